"""Session-wide Kokoro test models, built once in a temporary folder (never in the repo).

The network guard is ``no_network`` from tests/conftest.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from airvoice.engines.kokoro import KokoroEngine
from airvoice.testing.asr import build_whisper_base
from airvoice.testing.kokoro import JA_VOICES_NAME, build_kokoro_onnx, build_tiny_kmodel


@pytest.fixture(scope="session")
def english_voice() -> str:
    """The Japanese voice that reads English most clearly (WER 0 on our sentences)."""
    return "jm_kumo"


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kokoro-models")


@pytest.fixture(scope="session")
def onnx_dir(model_cache: Path) -> Path:
    return build_kokoro_onnx(model_cache / "onnx")


@pytest.fixture(scope="session")
def ja_voices(onnx_dir: Path) -> Path:
    return onnx_dir / JA_VOICES_NAME


@pytest.fixture(scope="session")
def tiny_dir(model_cache: Path) -> Path:
    return build_tiny_kmodel(model_cache / "tiny")


@pytest.fixture(scope="session")
def whisper_dir(model_cache: Path) -> Path:
    return build_whisper_base(model_cache / "whisper-base")


@pytest.fixture(scope="session")
def onnx_engine(onnx_dir: Path) -> KokoroEngine:
    return KokoroEngine(onnx_dir, backend="onnx", device="cpu")


@dataclass
class Call:
    tokens: int
    start: float
    end: float = 0.0


@dataclass
class RecordingBackend:
    """The real backend, with the time of every call written down."""

    inner: object
    calls: list[Call] = field(default_factory=list)
    name: str = "recording"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def synthesize(self, tokens: Sequence[int], style: np.ndarray, speed: float) -> np.ndarray:
        call = Call(len(tokens), time.perf_counter())
        with self._lock:
            self.calls.append(call)
        audio = self.inner.synthesize(tokens, style, speed)
        call.end = time.perf_counter()
        return audio


@pytest.fixture
def recording_engine(onnx_engine: KokoroEngine, ja_voices: Path) -> KokoroEngine:
    """An engine on the real ONNX backend that records its calls, one piece ahead at most."""
    return KokoroEngine(RecordingBackend(onnx_engine.backend), ja_voices, lookahead=1)
