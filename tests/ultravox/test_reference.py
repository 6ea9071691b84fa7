"""Input processing equal to the reference's (fixie-ai/ultravox), for every length and config."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from ultravox_reference import (
    reference_audio_embeddings,
    reference_features,
    reference_logits,
)

from airvoice.engines.ultravox import UltravoxEngine
from airvoice.engines.ultravox.chat_template import date_string
from airvoice.engines.ultravox.loading import load_model, locate_files
from airvoice.engines.ultravox.processor import prepare_audio
from airvoice.errors import CheckpointMismatchError
from airvoice.testing.audio import speechlike
from airvoice.testing.ultravox import build_tiny_ultravox

# Not multiples of 160 or 320, and the edges of the 30 s chunk (480,000 samples).
LENGTHS = [1, 100, 319, 320, 321, 16_001, 23_041, 479_999, 480_000, 480_001]


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", LENGTHS)
def test_mel_frames_and_token_counts_equal_the_reference(engine, n):
    processor = engine.processor
    values, lens, token_len = reference_features(processor.feature_extractor, _noise(n))
    assert processor.chunk_frames(n) == lens.tolist()
    assert processor.token_counts(n) == token_len.tolist()
    features = processor.features(_noise(n))
    assert features.chunk_frames == lens.tolist()
    assert features.token_counts == token_len.tolist()
    assert torch.equal(features.mel, values)  # bit for bit the reference's chunked log-mel


def test_token_counts_for_arbitrary_lengths(engine):
    """Lengths from resampled audio land anywhere: the counts follow the extractor's mask."""
    rng = np.random.default_rng(7)
    lengths = [*rng.integers(1, 20_000, 12).tolist(), 16_000 + 161, 44_100 * 1024 // 2756]
    for n in lengths:
        mask = engine.processor.feature_extractor(
            [_noise(max(n, 320))],
            sampling_rate=16000,
            padding="longest",
            pad_to_multiple_of=160,
            return_attention_mask=True,
        ).attention_mask
        frames = int(np.asarray(mask).sum())
        assert engine.processor.token_counts(n) == [math.ceil(frames / 16)], n


@pytest.mark.parametrize(
    ("seconds", "frames", "tokens"),
    [(31.0, [3000, 100], [188, 7]), (75.0, [3000, 3000, 1500], [188, 188, 94])],
)
def test_long_audio_is_one_log_mel_cut_into_masked_chunks(engine, seconds, frames, tokens):
    # Loud first 10 s, then quiet: a log-mel per 30 s window would set a different floor.
    audio = speechlike(seconds, seed=3)
    audio[160_000:] *= 1e-3
    samples = prepare_audio(audio)
    features = engine.processor.features(samples)
    assert features.chunk_frames == frames and features.token_counts == tokens
    assert tuple(features.mel.shape) == (len(frames), 128, 3000)
    whole = engine.processor.feature_extractor(
        samples, sampling_rate=16000, padding="longest", truncation=False, return_tensors="np"
    ).input_features[0]
    ours = torch.cat([features.mel[i, :, :n] for i, n in enumerate(frames)], dim=-1)
    assert torch.equal(ours, torch.from_numpy(whole))  # one global log-mel (one floor)
    assert not features.mel[-1, :, frames[-1] :].any()  # the last chunk's tail is zero padding
    window = engine.processor.feature_extractor(
        samples[480_000:960_000], sampling_rate=16000, padding="longest", return_tensors="np"
    ).input_features[0]
    assert not np.allclose(window[:, : frames[1]], whole[:, 3000 : 3000 + frames[1]])
    # The encoder masks each chunk's keys past its real length: (frames - 1) // 2 + 1 of 1500.
    mask = engine.model.encoder_mask(
        features.chunk_frames, 1500, torch.float32, torch.device("cpu")
    )
    assert (mask[:, 0, 0] == 0).sum(-1).tolist() == [(f - 1) // 2 + 1 for f in frames]


@pytest.mark.parametrize("n", [100, 16_001, 23_041, 496_000])
def test_audio_embeddings_equal_the_reference(engine, n):
    samples = speechlike(n / 16000, seed=5)[:n]
    with torch.inference_mode():
        ours = engine.model.embed_audio(engine.processor.features(samples))
        theirs = reference_audio_embeddings(
            engine.model, engine.processor.feature_extractor, samples
        )
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-5


async def test_first_logits_equal_the_reference(engine):
    """Prompt (chat template, date lines), audio and logits as the reference computes them."""
    audio = speechlike(23_041 / 16000, seed=6)[:23_041]
    conversation = engine.new_conversation(system_prompt="Be brief.")
    stream = engine.respond(conversation, audio, max_new_tokens=2)
    async for _ in stream:
        pass
    stats = await stream.wait_finished()
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "<|audio|>"}]
    with torch.inference_mode():
        theirs = reference_logits(
            engine.model,
            engine.tokenizer,
            turns,
            date_string(conversation.started),
            [audio],
            engine.processor.feature_extractor,
        )
    assert stats.audio_tokens == 10
    assert (stats.first_logits - theirs).abs().max().item() < 1e-4


def test_latency_block_size_masks_the_encoder_block_causally(tmp_path):
    built = build_tiny_ultravox(tmp_path, config_extra={"audio_latency_block_size": 100})
    engine = UltravoxEngine.load(built.ultravox_dir, built.text_model_dir, dtype="float32")
    try:
        mask = engine.model.encoder_mask([3000], 1500, torch.float32, torch.device("cpu"))
        allowed = mask[0, 0] == 0
        assert allowed[99, :100].all() and not allowed[99, 100:].any()
        assert allowed[100, :200].all() and not allowed[100, 200:].any()
        a = speechlike(4.0, seed=8)
        a[:40_000] *= 3  # the loudest part first, so the log-mel floor (max - 8) stays
        b = a.copy()
        b[40_000:] = speechlike(1.5, seed=9)  # change only what follows 2.5 s
        fa, fb = engine.processor.features(a), engine.processor.features(b)
        assert torch.equal(fa.mel[..., :240], fb.mel[..., :240])  # the same mel before
        with torch.inference_mode():
            ea = engine.model.embed_audio(fa)
            eb = engine.model.embed_audio(fb)
            theirs = reference_audio_embeddings(
                engine.model, engine.processor.feature_extractor, a, latency_block=100
            )
        assert (ea - theirs).abs().max().item() < 1e-5
        # Encoder frames 0-99 (block 0; tokens 0-11) cannot see the later blocks.
        assert (ea[:12] - eb[:12]).abs().max().item() < 1e-5
        assert (ea[14:] - eb[14:]).abs().max().item() > 1e-3
    finally:
        engine.close()


def test_latency_block_size_that_does_not_divide_is_refused(tmp_path):
    built = build_tiny_ultravox(tmp_path)
    path = built.ultravox_dir / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "audio_latency_block_size": 7}))
    with pytest.raises(CheckpointMismatchError, match="audio_latency_block_size=7"):
        load_model(locate_files(built.ultravox_dir, built.text_model_dir), "cpu", torch.float32)


def test_unknown_config_keys_are_logged_once(tmp_path, caplog):
    built = build_tiny_ultravox(tmp_path, config_extra={"audio_frobnication": 3})
    with caplog.at_level(logging.WARNING, logger="airvoice.engines.ultravox"):
        load_model(locate_files(built.ultravox_dir, built.text_model_dir), "cpu", torch.float32)
    warnings = [r.getMessage() for r in caplog.records if "ignores" in r.getMessage()]
    assert len(warnings) == 1 and "audio_frobnication" in warnings[0]
    assert "norm_init" not in warnings[0]  # known keys that do not matter are not reported


async def test_different_audio_gives_different_logits(tmp_path):
    built = build_tiny_ultravox(tmp_path, strong_audio=True, head_size=32)
    engine = UltravoxEngine.load(built.ultravox_dir, built.text_model_dir, dtype="float32")
    try:
        assert engine.config.text_config.head_dim == 32
        logits = []
        for seed in (1, 2):
            conversation = engine.new_conversation()
            stream = engine.respond(
                conversation, speechlike(2.0, seed=seed), max_new_tokens=1, temperature=0
            )
            async for _ in stream:
                pass
            logits.append((await stream.wait_finished()).first_logits)
        assert (logits[0] - logits[1]).abs().max().item() > 0.1
    finally:
        engine.close()
