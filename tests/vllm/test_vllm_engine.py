"""The vLLM engine on the real vLLM CPU build: streaming, prefix cache, abort, isolation."""

from __future__ import annotations

import asyncio
import importlib.metadata

from airvoice.engines.ultravox.backends.vllm_plugin import ARCHITECTURE
from airvoice.engines.ultravox.conversation import AssistantTurn, UserTextTurn, UserTurn
from airvoice.testing.audio import speechlike


async def _reply(engine, conversation, audio_or_text, **overrides):
    if isinstance(audio_or_text, str):
        stream = engine.respond_text(conversation, audio_or_text, **overrides)
    else:
        stream = engine.respond(conversation, audio_or_text, **overrides)
    deltas = [d async for d in stream]
    stats = await stream.wait_finished()
    return deltas, stats


async def test_a_turn_streams_text_deltas(vllm_engine):
    conversation = vllm_engine.new_conversation()
    deltas, stats = await _reply(vllm_engine, conversation, speechlike(1.5, seed=1))
    assert len(deltas) > 1 and all(deltas)
    assert stats.finish_reason in ("stop", "length")
    assert stats.time_to_first_token is not None and stats.time_to_first_token > 0
    user, reply = conversation.turns
    assert isinstance(user, UserTurn)
    assert user.num_tokens == vllm_engine.processor.token_count(int(1.5 * 16000))
    assert isinstance(reply, AssistantTurn) and reply.text == "".join(deltas)
    assert len(stats.token_ids) == stats.generated_tokens > 0


def _audio_ending_in_a_full_block(engine, conversation, block=32):
    """Speech whose last audio position lies in a block that turn 1's prompt fills (vLLM
    caches full blocks only), and that position."""
    for tenths in range(10, 80):
        samples = speechlike(tenths / 10, seed=2)
        turn = UserTurn(None, token_count=engine.processor.token_count(samples.size))
        items = conversation.render(engine.chat_template, [turn])
        last_audio = max(i for i, item in enumerate(items) if isinstance(item, tuple))
        if (last_audio // block + 1) * block <= len(items):
            return samples, last_audio
    raise AssertionError("no audio length puts the audio's end in a full block")


async def test_turn_two_hits_the_prefix_cache_through_turn_one_audio(vllm_engine):
    conversation = vllm_engine.new_conversation()
    audio, last_audio = _audio_ending_in_a_full_block(vllm_engine, conversation)
    _, first = await _reply(vllm_engine, conversation, audio)
    _, second = await _reply(vllm_engine, conversation, speechlike(1.0, seed=3))
    assert first.reused_tokens == 0
    assert second.reused_tokens > last_audio  # the cached prefix runs past turn 1's audio
    assert second.prompt_tokens > first.prompt_tokens
    health = vllm_engine.health()
    assert health["name"] == "vllm" and 0 < health["prefix_cache_hit_rate"] < 1


async def test_a_new_conversation_shares_no_cache_with_another(vllm_engine):
    audio = speechlike(1.5, seed=4)
    one, two = vllm_engine.new_conversation(), vllm_engine.new_conversation()
    _, first = await _reply(vllm_engine, one, audio)
    _, again = await _reply(vllm_engine, two, audio)  # same prompt, another user's salt
    assert again.reused_tokens == 0 and again.prompt_tokens == first.prompt_tokens


async def test_barge_in_aborts_and_frees_the_request(vllm_engine):
    conversation = vllm_engine.new_conversation()
    stream = vllm_engine.respond(
        conversation, speechlike(1.0, seed=5), max_new_tokens=400, min_new_tokens=400
    )
    await anext(stream)
    stream.cancel()
    rest = [d async for d in stream]
    stats = await stream.wait_finished()
    assert stats.finish_reason == "cancelled" and stats.generated_tokens < 400
    assert len(rest) < 400
    for _ in range(100):  # the engine's output handler lets the request go
        if vllm_engine.llm.get_num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.05)
    assert vllm_engine.llm.get_num_unfinished_requests() == 0
    # The heard-text edit replaces the cut reply; the next turn runs on it.
    conversation.set_last_assistant_text("Sure, I")
    assert conversation.turns[-1] == AssistantTurn("Sure, I")
    _, after = await _reply(vllm_engine, conversation, "go on")
    assert after.finish_reason in ("stop", "length")
    assert [type(t) for t in conversation.turns] == [
        UserTurn,
        AssistantTurn,
        UserTextTurn,
        AssistantTurn,
    ]


async def test_concurrent_conversations_stay_isolated(vllm_engine):
    audio_a, audio_b = speechlike(1.2, seed=6), speechlike(1.2, seed=7)
    alone_a = await _reply(vllm_engine, vllm_engine.new_conversation(), audio_a)
    alone_b = await _reply(vllm_engine, vllm_engine.new_conversation(), audio_b)
    conv_a, conv_b = vllm_engine.new_conversation(), vllm_engine.new_conversation()
    both = await asyncio.gather(
        _reply(vllm_engine, conv_a, audio_a), _reply(vllm_engine, conv_b, audio_b)
    )
    assert both[0][1].token_ids == alone_a[1].token_ids
    assert both[1][1].token_ids == alone_b[1].token_ids
    assert len(conv_a.turns) == len(conv_b.turns) == 2
    assert conv_a.turns[0].uuid != conv_b.turns[0].uuid


async def test_typed_turns(vllm_engine):
    conversation = vllm_engine.new_conversation()
    deltas, stats = await _reply(vllm_engine, conversation, "What time is it?")
    assert deltas and stats.finish_reason in ("stop", "length")
    assert isinstance(conversation.turns[0], UserTextTurn)
    _, spoken = await _reply(vllm_engine, conversation, speechlike(1.0, seed=8))
    assert spoken.reused_tokens > 0


async def test_different_audio_gives_a_different_reply(vllm_engine):
    fixed = {"max_new_tokens": 16, "min_new_tokens": 16, "logprobs": 5}
    _, one = await _reply(
        vllm_engine, vllm_engine.new_conversation(), speechlike(1.5, seed=9), **fixed
    )
    _, two = await _reply(
        vllm_engine, vllm_engine.new_conversation(), speechlike(1.5, seed=10), **fixed
    )
    assert one.prompt_tokens == two.prompt_tokens and one.audio_tokens == two.audio_tokens > 0
    assert one.token_ids != two.token_ids
    assert one.logprobs[0] != two.logprobs[0]


async def test_the_token_budget_drops_the_oldest_turns(vllm_engine):
    conversation = vllm_engine.new_conversation(max_context_tokens=200)
    for seed in range(4):
        _, stats = await _reply(vllm_engine, conversation, speechlike(1.5, seed=20 + seed))
        assert stats.prompt_tokens + 24 <= 200
    assert conversation.num_user_turns < 4


def test_our_processor_is_a_vllm_plugin_and_no_remote_code_runs(vllm_engine):
    plugins = importlib.metadata.entry_points(group="vllm.general_plugins")
    assert "airvoice_ultravox" in {p.name for p in plugins}
    config = vllm_engine.llm.model_config
    assert config.trust_remote_code is False
    assert config.architectures == [ARCHITECTURE]


async def test_a_turn_right_after_barge_in_sees_the_cut_reply_first(vllm_engine):
    conversation = vllm_engine.new_conversation()
    first = vllm_engine.respond(
        conversation, speechlike(1.0, seed=30), max_new_tokens=300, min_new_tokens=300
    )
    await anext(first)
    first.cancel()
    second = vllm_engine.respond(conversation, speechlike(1.0, seed=31))  # no wait: barge-in
    [d async for d in second]
    cut, after = await first.wait_finished(), await second.wait_finished()
    assert cut.finish_reason == "cancelled" and after.finish_reason in ("stop", "length")
    kinds = [type(t) for t in conversation.turns]
    assert kinds == [UserTurn, AssistantTurn, UserTurn, AssistantTurn]
    assert after.prompt_tokens > cut.prompt_tokens + 1  # turn 2's prompt holds the cut reply
