"""A real server on 127.0.0.1 with the offline models: tiny Ultravox, real int8 Kokoro."""

from __future__ import annotations

import numpy as np
import pytest
import soxr
from server_helpers import VOICE

from airvoice.engines.kokoro import KokoroEngine
from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.pipeline import Engines
from airvoice.testing.kokoro import build_kokoro_onnx
from airvoice.testing.ultravox import build_tiny_ultravox


@pytest.fixture(scope="session")
def engines(tmp_path_factory) -> Engines:
    tiny = build_tiny_ultravox(tmp_path_factory.mktemp("server-ultravox"))
    settings = GenerationSettings(temperature=1.0, top_p=1.0, seed=7, max_new_tokens=10)
    ultravox = UltravoxEngine.load(tiny.ultravox_dir, tiny.text_model_dir, settings=settings)
    onnx_dir = build_kokoro_onnx(tmp_path_factory.mktemp("server-kokoro"))
    kokoro = KokoroEngine(onnx_dir, backend="onnx", device="cpu")
    yield Engines(ultravox, kokoro)
    ultravox.close()


@pytest.fixture(scope="session")
def speech16(engines) -> np.ndarray:
    """A spoken question (Kokoro's voice), as 16 kHz int16."""
    pcm24 = engines.kokoro.synthesize("What is the weather like in Paris today?", VOICE)
    return np.clip(soxr.resample(pcm24.astype(np.float32), 24000, 16000), -32768, 32767).astype(
        np.int16
    )
