"""Generation settings: the checkpoint's defaults and the reference's repetition penalty."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from ultravox_reference import reference_audio_embeddings, reference_prompt

from airvoice.config import ServerConfig
from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.engines.ultravox.backends.torch_engine import penalize_repetition
from airvoice.engines.ultravox.chat_template import date_string
from airvoice.testing.audio import speechlike
from airvoice.testing.ultravox import build_tiny_ultravox


def test_repetition_penalty_equals_transformers():
    torch.manual_seed(0)
    logits = torch.randn(1, 50) * 3
    ids = torch.tensor([[3, 7, 7, 12, 40, 49, 0]])
    theirs = transformers.RepetitionPenaltyLogitsProcessor(1.3)(ids, logits.clone())
    seen = torch.zeros(50, dtype=torch.bool)
    seen[ids[0]] = True
    assert torch.equal(penalize_repetition(logits[0], seen, 1.3), theirs[0])
    with pytest.raises(ValueError, match="repetition_penalty"):
        GenerationSettings(repetition_penalty=0)


def test_defaults_come_from_generation_config(tmp_path):
    built = build_tiny_ultravox(tmp_path)
    assert GenerationSettings.from_generation_config({}).repetition_penalty == 1.1
    path = built.ultravox_dir / "generation_config.json"
    config = json.loads(path.read_text())
    config.update({"temperature": 0.3, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.25})
    path.write_text(json.dumps(config))
    engine = UltravoxEngine.load(
        built.ultravox_dir, built.text_model_dir, dtype="float32", generation={"top_p": 0.5}
    )
    try:
        s = engine.settings
        assert (s.temperature, s.top_p, s.top_k, s.repetition_penalty) == (0.3, 0.5, 20, 1.25)
    finally:
        engine.close()
    greedy = GenerationSettings.from_generation_config({"do_sample": False, "temperature": 0.6})
    assert greedy.temperature == 0


def test_serve_settings_leave_unset_values_to_the_checkpoint(monkeypatch):
    monkeypatch.setenv("AIRVOICE_REPETITION_PENALTY", "1.2")
    config = ServerConfig()
    assert config.repetition_penalty == 1.2 and config.temperature is None
    with pytest.raises(ValueError):
        ServerConfig(repetition_penalty=0)


async def test_greedy_reply_equals_transformers_generate(engine):
    """The reference pipeline's decoding: greedy with repetition_penalty, through the same
    prompt (template, EOS at the audio positions) in transformers' own ``generate``."""
    audio = speechlike(1.5, seed=21)
    conversation = engine.new_conversation(system_prompt="Be brief.")
    stream = engine.respond(
        conversation,
        audio,
        temperature=0,
        repetition_penalty=3.0,
        max_new_tokens=12,
        min_new_tokens=12,
    )
    async for _ in stream:
        pass
    stats = await stream.wait_finished()
    ours = conversation.kv_items[stats.prompt_tokens :]
    model, tokenizer = engine.model, engine.tokenizer
    with torch.inference_mode():
        rows = reference_audio_embeddings(model, engine.processor.feature_extractor, audio)
        turns = [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "<|audio|>"},
        ]
        _, ids = reference_prompt(tokenizer, turns, date_string(conversation.started), [len(rows)])
        start = ids.index(None)
        input_ids = torch.tensor([[tokenizer.eos_token_id if i is None else i for i in ids]])
        embeds = model.language_model.get_input_embeddings()(input_ids)
        embeds[0, start : start + len(rows)] = rows
        kwargs = {
            "input_ids": input_ids,
            "inputs_embeds": embeds,
            "attention_mask": torch.ones_like(input_ids),
            "do_sample": False,
            "max_new_tokens": 12,
            "min_new_tokens": 12,
            "eos_token_id": sorted(engine.stop_ids),
            "pad_token_id": tokenizer.eos_token_id,
        }
        theirs = model.language_model.generate(**kwargs, repetition_penalty=3.0)
        plain = model.language_model.generate(**kwargs, repetition_penalty=1.0)
    theirs = theirs[0, input_ids.shape[1] :].tolist()
    assert len(ours) == 11  # the 12th token is sampled but never fed back
    assert ours == theirs[:11] and stats.generated_tokens == 12
    assert plain[0, input_ids.shape[1] :].tolist() != theirs  # the penalty changes this reply
