"""The engine: streaming, cancellation, isolation, interleaving, history and KV reuse."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import torch

from airvoice.engines.ultravox import GenerationSettings
from airvoice.engines.ultravox.backends.torch_engine import sample_token
from airvoice.engines.ultravox.conversation import AssistantTurn, UserTurn
from airvoice.errors import AudioInputError, ConversationBusyError
from airvoice.testing.audio import speechlike

# transformers' deprecation warnings (e.g. past_key_values, gone in 5.40) fail the decoding job.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")


async def _reply(engine, conversation, audio, **overrides):
    stream = engine.respond(conversation, audio, **overrides)
    deltas = [d async for d in stream]
    stats = await stream.wait_finished()
    return deltas, stats


async def test_first_delta_arrives_before_generation_finishes(engine):
    conversation = engine.new_conversation()
    stream = engine.respond(conversation, speechlike(1.0), max_new_tokens=200, min_new_tokens=200)
    arrivals = []
    async for _ in stream:
        arrivals.append(time.perf_counter())
    stats = await stream.wait_finished()
    assert stats.generated_tokens == 200 and stats.finish_reason == "length"
    assert len(arrivals) > 1
    assert arrivals[0] < stats.finished_at  # streamed, not delivered at the end
    assert stats.time_to_first_token is not None and stats.time_to_first_token > 0
    assert stream.text and conversation.turns[-1].text == stream.text


async def test_cancel_mid_stream_stops_within_one_step(engine):
    conversation = engine.new_conversation()
    stream = engine.respond(conversation, speechlike(1.0), max_new_tokens=500, min_new_tokens=500)
    received = 0
    async for _ in stream:
        received += 1
        if received == 3:
            at_cancel = stream.stats.generated_tokens
            stream.cancel()
            break
    stats = await asyncio.wait_for(stream.wait_finished(), 5)
    assert stats.finish_reason == "cancelled"
    assert stats.generated_tokens <= at_cancel + 1
    assert engine.pending_replies == 0  # the worker is free again
    # The interrupted exchange is remembered: the user turn and what was generated.
    assert isinstance(conversation.turns[0], UserTurn)
    assert isinstance(conversation.turns[1], AssistantTurn)
    # And the conversation takes the next turn at once.
    _deltas, stats = await _reply(engine, conversation, speechlike(1.0, seed=1), max_new_tokens=4)
    assert stats.finish_reason == "length" and len(conversation.turns) == 4


async def test_cancelling_the_consumer_task_cancels_the_reply(engine):
    conversation = engine.new_conversation()
    stream = engine.respond(conversation, speechlike(1.0), max_new_tokens=500, min_new_tokens=500)
    first = asyncio.Event()

    async def consume():
        async for _ in stream:
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = await asyncio.wait_for(stream.wait_finished(), 5)
    assert stats.finish_reason == "cancelled" and stats.generated_tokens < 500


async def test_two_conversations_do_not_leak(engine):
    alone = engine.new_conversation(system_prompt="You are B.")
    b_alone_deltas, b_alone = await _reply(engine, alone, speechlike(1.5, seed=7), max_new_tokens=8)

    a = engine.new_conversation(system_prompt="You are A.")
    b = engine.new_conversation(system_prompt="You are B.")
    (_, a_stats), (b_deltas, b_together) = await asyncio.gather(
        _reply(engine, a, speechlike(2.0, seed=5), max_new_tokens=30, min_new_tokens=30),
        _reply(engine, b, speechlike(1.5, seed=7), max_new_tokens=8),
    )
    # B's reply is what it is alone: nothing of A's audio or text reached it.
    assert torch.allclose(b_alone.first_logits, b_together.first_logits, atol=1e-5)
    assert "".join(b_deltas) == "".join(b_alone_deltas)
    assert b_together.prompt_tokens == b_alone.prompt_tokens
    keys_a = {t.key for t in a.turns if isinstance(t, UserTurn)}
    keys_b = {t.key for t in b.turns if isinstance(t, UserTurn)}
    assert len(keys_a) == 1 and len(keys_b) == 1 and not keys_a & keys_b
    assert not any(isinstance(i, tuple) and i[0] in keys_a for i in b.kv_items)
    assert a_stats.generated_tokens == 30


async def test_one_long_reply_does_not_hold_back_another_first_token(engine):
    long_conv = engine.new_conversation()
    short_conv = engine.new_conversation()
    long_stream = engine.respond(long_conv, speechlike(1.0), max_new_tokens=400, min_new_tokens=400)
    await long_stream.__anext__()  # the long reply is decoding
    _short_deltas, short_stats = await _reply(
        engine, short_conv, speechlike(1.0, seed=2), max_new_tokens=2
    )
    assert short_stats.first_token_step - short_stats.submitted_step <= 3
    assert long_stream.stats.finished_at is None  # still going when the short one was done
    long_stream.cancel()
    await long_stream.wait_finished()


async def test_history_holds_earlier_turns_as_audio(engine):
    conversation = engine.new_conversation()
    await _reply(engine, conversation, speechlike(1.0, seed=1), max_new_tokens=3)
    await _reply(engine, conversation, speechlike(2.0, seed=2), max_new_tokens=3)
    user3 = UserTurn(torch.zeros(7, engine.config.text_config.hidden_size))
    items = conversation.prompt(engine.chat_template, user3, reserve=10)
    audio_counts: dict[int, int] = {}
    for item in items:
        if isinstance(item, tuple):
            audio_counts[item[0]] = audio_counts.get(item[0], 0) + 1
    turn1, _, turn2, _ = conversation.turns
    assert audio_counts == {turn1.key: 7, turn2.key: 13, user3.key: 7}
    # Order: system, user 1, assistant 1, user 2, assistant 2, user 3, assistant header.
    first = [items.index((t.key, 0)) for t in (turn1, turn2, user3)]
    assert first == sorted(first)
    assert items[0] == engine.tokenizer.bos_token_id
    header = engine.chat_template.encode_text("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert items[-len(header) :] == header


async def test_budget_drops_oldest_turns_first_never_the_system_prompt(engine):
    conversation = engine.new_conversation(system_prompt="Short.", max_context_tokens=120)
    keys = []
    for i in range(6):
        _, stats = await _reply(engine, conversation, speechlike(1.0, seed=i), max_new_tokens=6)
        keys.append(conversation.turns[-2].key)
        assert stats.prompt_tokens + 6 <= 120
    kept = [t.key for t in conversation.turns if isinstance(t, UserTurn)]
    assert kept == keys[-len(kept) :] and len(kept) < 6  # a suffix: the oldest went first
    hidden = engine.config.text_config.hidden_size
    items = conversation.prompt(engine.chat_template, UserTurn(torch.zeros(7, hidden)), reserve=6)
    system = conversation.render(engine.chat_template, [])
    header = engine.chat_template.encode_text("<|start_header_id|>assistant<|end_header_id|>\n\n")
    system = system[: -len(header)]  # the system turn alone, without the assistant header
    assert engine.tokenizer.decode(system).endswith("Short.<|eot_id|>")
    assert items[: len(system)] == system


async def test_turn_too_long_for_the_budget_is_a_clear_error(engine):
    conversation = engine.new_conversation(max_context_tokens=80)
    stream = engine.respond(conversation, speechlike(10.0), max_new_tokens=8)
    with pytest.raises(ValueError, match="raise max_context_tokens"):
        async for _ in stream:
            pass
    assert conversation.turns == []


async def test_kv_reuse_gives_the_logits_of_a_full_recompute(engine):
    audios = [speechlike(1.0 + 0.5 * i, seed=10 + i) for i in range(3)]
    reuse = engine.new_conversation()
    fresh = engine.new_conversation()
    for i, audio in enumerate(audios):
        _, with_cache = await _reply(engine, reuse, audio, max_new_tokens=6)
        _, without = await _reply(engine, fresh, audio, max_new_tokens=6, reuse_kv_cache=False)
        assert without.reused_tokens == 0
        if i > 0:
            assert with_cache.reused_tokens > 0
            assert with_cache.prompt_tokens == without.prompt_tokens
        diff = (with_cache.first_logits - without.first_logits).abs().max().item()
        assert diff < 1e-4, f"turn {i + 1}: max |diff| {diff}"
    # What the user heard (cut at a barge-in) replaces the reply; reuse still matches.
    reuse.set_last_assistant_text("The meeting")
    fresh.set_last_assistant_text("The meeting")
    _, with_cache = await _reply(engine, reuse, audios[0], max_new_tokens=4)
    _, without = await _reply(engine, fresh, audios[0], max_new_tokens=4, reuse_kv_cache=False)
    assert (with_cache.first_logits - without.first_logits).abs().max().item() < 1e-4
    assert with_cache.reused_tokens > 0 and with_cache.prompt_tokens == without.prompt_tokens
    # The prompt both saw is the chat template's, date lines included.
    text = engine.tokenizer.decode([i for i in reuse.kv_items if isinstance(i, int)])
    assert "Cutting Knowledge Date: December 2023\nToday Date: " in text
    assert "The meeting<|eot_id|>" in text


async def test_reset_clears_history_but_keeps_system_prompt(engine):
    conversation = engine.new_conversation(system_prompt="Keep me.")
    await _reply(engine, conversation, speechlike(1.0), max_new_tokens=3)
    conversation.reset()
    assert conversation.turns == [] and conversation.kv_cache is None
    _, stats = await _reply(engine, conversation, speechlike(1.0), max_new_tokens=3)
    assert stats.reused_tokens == 0 and conversation.system_prompt == "Keep me."


async def test_second_reply_while_busy_is_refused(engine):
    conversation = engine.new_conversation()
    stream = engine.respond(conversation, speechlike(1.0), max_new_tokens=300, min_new_tokens=300)
    with pytest.raises(ConversationBusyError, match="cancel that reply"):
        engine.respond(conversation, speechlike(1.0))
    stream.cancel()  # after a barge-in the next turn is accepted straight away
    _, stats = await _reply(engine, conversation, speechlike(1.0, seed=4), max_new_tokens=2)
    assert stats.finish_reason == "length"


async def test_bad_audio_is_refused_before_anything_runs(engine):
    conversation = engine.new_conversation()
    steps = engine.decode_steps
    with pytest.raises(AudioInputError):
        engine.respond(conversation, np.zeros(0, np.float32))
    assert engine.decode_steps == steps and conversation.turns == []


async def test_stops_at_end_of_turn_tokens(engine):
    eot = engine.tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert {eot, engine.tokenizer.convert_tokens_to_ids("<|end_of_text|>")} <= engine.stop_ids
    conversation = engine.new_conversation()
    deltas, stats = await _reply(engine, conversation, speechlike(1.0), max_new_tokens=400)
    assert stats.finish_reason == "stop" and stats.generated_tokens < 400
    assert "<|eot_id|>" not in "".join(deltas)
    # With min_new_tokens the end-of-turn tokens are held back until then.
    _, held = await _reply(
        engine, conversation, speechlike(1.0), max_new_tokens=60, min_new_tokens=60
    )
    assert held.finish_reason == "length" and held.generated_tokens == 60


def test_sampling_settings():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.9])
    greedy = GenerationSettings(temperature=0)
    assert sample_token(logits, greedy, None) == 1
    top1 = GenerationSettings(temperature=1.0, top_k=1)
    assert {sample_token(logits, top1, torch.Generator().manual_seed(s)) for s in range(20)} == {1}
    nucleus = GenerationSettings(temperature=1.0, top_p=0.5)
    picks = {sample_token(logits, nucleus, torch.Generator().manual_seed(s)) for s in range(50)}
    assert picks <= {1, 3} and len(picks) == 2
    seeded = GenerationSettings(temperature=1.0, top_p=1.0)
    a = [sample_token(logits, seeded, torch.Generator().manual_seed(9)) for _ in range(3)]
    assert len(set(a)) == 1
    for bad in (
        {"max_new_tokens": 0},
        {"min_new_tokens": 300},
        {"temperature": -1},
        {"top_p": 0},
        {"top_k": -1},
    ):
        with pytest.raises(ValueError):
            GenerationSettings(**bad)


async def test_typed_turns_join_the_same_history(engine):
    from airvoice.engines.ultravox.conversation import UserTextTurn

    conversation = engine.new_conversation()
    await _reply(engine, conversation, speechlike(1.0), max_new_tokens=4, min_new_tokens=4)
    stream = engine.respond_text(
        conversation, "What time is it in Tokyo?", max_new_tokens=4, min_new_tokens=4
    )
    deltas = [d async for d in stream]
    stats = await stream.wait_finished()
    assert deltas and stats.audio_tokens == 0 and stats.reused_tokens > 0
    typed = conversation.turns[2]
    assert isinstance(typed, UserTextTurn) and typed.text == "What time is it in Tokyo?"
    with pytest.raises(AudioInputError, match="empty"):
        engine.respond_text(conversation, "   ")


async def test_a_single_sample_of_audio_gets_a_reply(engine):
    """The reference pads audio shorter than two hops; only empty audio is refused."""
    conversation = engine.new_conversation()
    _, stats = await _reply(engine, conversation, np.full(1, 0.1, np.float32), max_new_tokens=2)
    assert stats.audio_tokens == 1 and stats.finish_reason in ("length", "stop")
