"""Audio in: token counts, Whisper windows, resampling and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from airvoice.engines.ultravox.processor import prepare_audio
from airvoice.errors import AudioInputError
from airvoice.testing.audio import speechlike


@pytest.mark.parametrize(("seconds", "tokens"), [(1.0, 7), (2.0, 13), (30.0, 188), (31.0, 195)])
def test_audio_token_counts(engine, seconds, tokens):
    samples = prepare_audio(speechlike(seconds))
    assert engine.processor.token_count(samples.size) == tokens
    features = engine.processor.features(samples)
    assert features.num_tokens == tokens


@pytest.mark.parametrize(("seconds", "tokens"), [(1.0, 7), (2.0, 13)])
def test_embeddings_have_one_row_per_audio_token(engine, seconds, tokens):
    features = engine.processor.features(prepare_audio(speechlike(seconds)))
    with torch.inference_mode():
        rows = engine.model.embed_audio(features)
    assert rows.shape == (tokens, engine.config.text_config.hidden_size)
    assert torch.isfinite(rows).all()


def test_audio_over_30_seconds_is_split_into_whisper_windows(engine):
    features = engine.processor.features(prepare_audio(speechlike(45.0)))
    assert features.chunk_frames == [3000, 1500]  # 100 mel frames per second, 30 s per chunk
    assert tuple(features.mel.shape) == (2, 128, 3000)  # the continuation is padded to 30 s
    assert features.token_counts == [188, 94]


def test_int16_and_float_give_the_same_samples():
    floats = speechlike(0.5)
    ints = np.round(floats * 32767).astype(np.int16)
    np.testing.assert_allclose(prepare_audio(ints), floats, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_other_rates_are_resampled_to_16k(engine, rate):
    t = np.arange(rate) / rate  # one second
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    samples = prepare_audio(tone, sample_rate=rate)
    assert abs(samples.size - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(samples))
    assert abs(np.argmax(spectrum) * 16000 / samples.size - 440) < 2
    assert engine.processor.token_count(samples.size) == 7


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.array([0.0, np.nan] * 800, np.float32), "NaN or infinite"),
        (np.array([0.0, np.inf] * 800, np.float32), "NaN or infinite"),
        (np.zeros((1600, 2), np.float32), "mono"),
        (np.zeros(1600, np.int32), "not supported"),
        (np.zeros(16000 * 121, np.float32), "limit of 120 s"),
    ],
)
def test_bad_audio_gets_a_clear_error(audio, message):
    with pytest.raises(AudioInputError, match=message):
        prepare_audio(audio)


def test_very_short_audio_is_padded_to_two_hops(engine):
    features = engine.processor.features(prepare_audio(np.full(100, 0.1, np.float32)))
    assert features.chunk_frames == [2] and features.token_counts == [1]


def test_audio_limit_is_configurable():
    with pytest.raises(AudioInputError, match="limit of 5 s"):
        prepare_audio(speechlike(6.0), max_seconds=5)
    assert prepare_audio(speechlike(6.0), max_seconds=10).size == 96000
