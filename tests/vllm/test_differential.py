"""The vLLM engine against our torch engine: same checkpoint, same audio, greedy, fp32.

Both render the conversation with the same chat template and expand each ``<|audio|>`` to the
same number of positions; vLLM runs its own Ultravox (Whisper encoder, projector, Llama) with
our processor. Over three spoken turns they must pick the same tokens, with the same top
log-probabilities (of the raw model output) at every step.
"""

from __future__ import annotations

import math

import pytest

from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.testing.audio import speechlike

STEPS = 16
TOP = 5
TOLERANCE = 2e-3
"""Largest difference of a top log-probability: both run fp32, with different kernels."""

SETTINGS = GenerationSettings(temperature=0.0, max_new_tokens=STEPS, min_new_tokens=STEPS)


@pytest.fixture(scope="module")
def torch_engine(vllm_engine):
    files = vllm_engine.files
    engine = UltravoxEngine.load(
        files.ultravox_dir, files.text_model_dir, device="cpu", dtype="float32", settings=SETTINGS
    )
    yield engine
    engine.close()


async def _turn(engine, conversation, audio):
    stream = engine.respond(conversation, audio, logprobs=TOP, **SETTINGS.__dict__)
    text = "".join([d async for d in stream])
    return text, await stream.wait_finished()


async def test_vllm_matches_the_torch_engine_over_three_turns(vllm_engine, torch_engine):
    ours, theirs = torch_engine.new_conversation(), vllm_engine.new_conversation()
    theirs.started = ours.started
    worst = 0.0
    for turn in range(3):
        audio = speechlike(1.0 + 0.4 * turn, seed=40 + turn)
        text_t, t = await _turn(torch_engine, ours, audio)
        text_v, v = await _turn(vllm_engine, theirs, audio)
        assert v.prompt_tokens == t.prompt_tokens, f"turn {turn}: prompts differ in length"
        assert v.token_ids == t.token_ids, f"turn {turn}: tokens differ"
        assert len(t.token_ids) == STEPS and text_v == text_t
        assert len(v.logprobs) == len(t.logprobs) == STEPS
        for step, (lp_v, lp_t) in enumerate(zip(v.logprobs, t.logprobs, strict=True)):
            top_t = sorted(lp_t, key=lp_t.get, reverse=True)
            top_v = sorted((k for k in lp_v), key=lp_v.get, reverse=True)[:TOP]
            assert top_v[0] == top_t[0], f"turn {turn} step {step}: argmax differs"
            for token in top_t:
                assert token in lp_v, f"turn {turn} step {step}: {token} not in vLLM's top"
                diff = abs(lp_v[token] - lp_t[token])
                worst = max(worst, diff)
                assert diff < TOLERANCE, f"turn {turn} step {step}: logprob differs by {diff}"
        assert not any(math.isnan(x) for step in v.logprobs for x in step.values())
    print(f"differential: 3 turns x {STEPS} steps matched, max |logprob diff| = {worst:.2e}")
