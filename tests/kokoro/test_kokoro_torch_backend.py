"""The torch backend: KModel from local files only, with the network blocked."""

from __future__ import annotations

import json
import socket
from contextlib import aclosing

import numpy as np
import pytest

from airvoice.engines.kokoro import SAMPLE_RATE, KokoroEngine, KokoroError, cache
from airvoice.engines.kokoro.backends.torch_backend import TorchBackend
from airvoice.engines.kokoro.vocab import encode
from airvoice.testing.kokoro import TINY_FRAMES_PER_PHONEME

SAMPLES_PER_FRAME = 600  # 24 kHz at 40 frames a second: istftnet upsamples 10 * 6 * hop 5 * 2


def test_the_guard_blocks_the_network(no_network):
    with pytest.raises(OSError, match="blocked"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert no_network, "the attempt was not recorded"


async def test_tiny_checkpoint_loads_offline_and_streams_pcm(no_network, tiny_dir):
    cache.clear()  # load the model, the voices and the G2P under the guard, not from earlier
    engine = KokoroEngine(tiny_dir, backend="torch", device="cpu")
    assert isinstance(engine.backend, TorchBackend)
    assert engine.voice_names == ["af_tiny", "am_tiny"]
    text = "Hello world. This is a short test of the tiny model."
    pieces = engine.phonemize(text)
    chunks = []
    async with aclosing(engine.stream(text, "af_tiny:0.7,am_tiny:0.3", speed=1.0)) as stream:
        async for chunk in stream:
            assert isinstance(chunk, bytes) and len(chunk) % 2 == 0
            chunks.append(np.frombuffer(chunk, dtype="<i2"))
    assert no_network == []
    assert engine.sample_rate == SAMPLE_RATE == 24_000
    # Random weights, but exact timing: each token (and the two pads) lasts the frames the
    # tiny model gives it, 600 samples each at 24 kHz.
    expected = [(len(encode(p)) + 2) * TINY_FRAMES_PER_PHONEME * SAMPLES_PER_FRAME for p in pieces]
    assert [len(c) for c in chunks] == expected
    assert all(np.abs(c).max() > 0 for c in chunks)


def test_speed_changes_the_length(tiny_dir):
    engine = KokoroEngine(tiny_dir, backend="torch", device="cpu")
    normal = engine.synthesize("Speed test.", "af_tiny", speed=1.0)
    fast = engine.synthesize("Speed test.", "af_tiny", speed=2.0)
    assert len(fast) * 2 == len(normal)


def test_half_precision_is_refused_with_advice(tiny_dir):
    with pytest.raises(ValueError, match="float32"):
        KokoroEngine(tiny_dir, backend="torch", device="cpu", dtype="bfloat16")


def test_a_checkpoint_that_does_not_fit_its_config_is_an_error(tiny_dir, tmp_path):
    config = json.loads((tiny_dir / "config.json").read_text())
    config["plbert"]["hidden_size"] = 32
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(KokoroError, match=r"do not fit its config\.json"):
        TorchBackend(tiny_dir / "kokoro-v1_0.pth", config=tmp_path / "config.json")
