"""The repetition penalty counts the same tokens on vLLM as in the reference.

The reference's processor (fixie-ai ``ultravox_processing.py``) writes the tokenizer's EOS at
every audio position of ``input_ids``, so HF's ``RepetitionPenaltyLogitsProcessor`` penalizes
EOS whenever the prompt has audio, and nothing else for the audio. Our torch engine follows it.
vLLM's penalty counts the ids of the prompt it was sent (``apply_penalties`` in
``vllm/model_executor/layers/utils.py``): an id marks each audio position there, and it must be
the same EOS, not the config's ``audio_token_index`` (32000 in the hub repos, an ordinary text
token of Llama 3, which vLLM would then penalize in every spoken turn).
"""

from __future__ import annotations

import json
import shutil
import uuid

from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.testing.audio import speechlike
from airvoice.testing.server import load_vllm_engine

PENALIZED = GenerationSettings(temperature=0.0, max_new_tokens=8, repetition_penalty=8.0)
"""Greedy with a strong penalty: whether a token is penalized decides whether it is picked."""


def test_vllm_counts_the_reference_prompt_ids(vllm_engine):
    """The prompt ids vLLM's penalty counts are the reference's ``input_ids``: the text's ids,
    and the tokenizer's EOS at each audio position."""
    from vllm import SamplingParams

    conversation = vllm_engine.new_conversation()
    user = vllm_engine._user_turn(speechlike(1.2, seed=11))
    prompt = vllm_engine._prompt(conversation, user, vllm_engine.settings)
    items = conversation.prompt(vllm_engine.chat_template, user, reserve=0)
    eos = vllm_engine.tokenizer.eos_token_id
    reference = [eos if isinstance(i, tuple) else i for i in items]

    async def prompt_ids() -> list[int]:
        params = SamplingParams(max_tokens=1, temperature=0.0)
        async for out in vllm_engine.llm.generate(prompt, params, f"test-{uuid.uuid4().hex}"):
            return list(out.prompt_token_ids)
        raise AssertionError("vLLM returned nothing")

    ids = vllm_engine.runtime.loop.submit(prompt_ids()).result(60)
    assert ids == reference
    assert sum(isinstance(i, tuple) for i in items) == user.num_tokens > 0


async def _turns(engine, audios, started, settings=PENALIZED):
    conversation = engine.new_conversation()
    conversation.started = started  # the same date in the system prompt
    tokens = []
    for audio in audios:
        stream = engine.respond(conversation, audio, **settings.__dict__)
        _ = [d async for d in stream]
        tokens.append((await stream.wait_finished()).token_ids)
    return tokens


async def test_an_in_vocabulary_audio_token_index_is_not_penalized(vllm_engine, tmp_path):
    """A checkpoint whose ``audio_token_index`` is an ordinary token (as the hub repos' 32000):
    torch and vLLM pick the same tokens with a strong penalty, where penalizing that token
    would change the reply. The token is the one the torch engine picks first."""
    files = vllm_engine.files
    torch_engine = UltravoxEngine.load(
        files.ultravox_dir, files.text_model_dir, device="cpu", dtype="float32", settings=PENALIZED
    )
    audios = [speechlike(1.2, seed=21), speechlike(0.8, seed=22)]
    started = torch_engine.new_conversation().started
    try:
        expected = await _turns(torch_engine, audios, started)
    finally:
        torch_engine.close()
    first = expected[0][0]

    ultravox, text_model = tmp_path / "ultravox", tmp_path / "text-model"
    shutil.copytree(files.ultravox_dir, ultravox)
    shutil.copytree(files.text_model_dir, text_model)
    config = json.loads((ultravox / "config.json").read_text())
    assert first < config["vocab_size"] and first != vllm_engine.tokenizer.eos_token_id
    config["audio_token_index"] = first
    (ultravox / "config.json").write_text(json.dumps(config))

    engine = load_vllm_engine(ultravox, text_model, PENALIZED)
    try:
        assert await _turns(engine, audios, started) == expected
    finally:
        engine.close()


async def test_audio_of_one_token_marked_by_eos_lands_at_its_own_position(vllm_engine):
    """With EOS marking audio positions, a one-token audio (20 ms) is a lone EOS, like the
    ``<|eot_id|>`` ending every earlier turn: vLLM must still put the audio at its own place.
    Greedy torch and vLLM give the same tokens over three turns, the short one last."""
    files = vllm_engine.files
    settings = GenerationSettings(temperature=0.0, max_new_tokens=8)
    torch_engine = UltravoxEngine.load(
        files.ultravox_dir, files.text_model_dir, device="cpu", dtype="float32", settings=settings
    )
    audios = [speechlike(1.0, seed=31), speechlike(0.6, seed=32), speechlike(0.02, seed=33)]
    assert vllm_engine.processor.token_count(audios[-1].size) == 1
    started = torch_engine.new_conversation().started
    try:
        expected = await _turns(torch_engine, audios, started, settings)
    finally:
        torch_engine.close()
    assert await _turns(vllm_engine, audios, started, settings) == expected
