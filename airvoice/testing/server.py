"""An airvoice server on loopback with offline models: the tiny Ultravox and the real Kokoro."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from airvoice.config import ServerConfig

TOKEN = "test-token-0123456789"
VOICE = "jm_kumo"
"""A voice of the int8 Kokoro build on PyPI that reads English clearly."""
QUESTION = "What is the weather like in Paris today?"


def offline_server_config(**overrides: Any) -> ServerConfig:
    """Server settings for tests: loopback, any free port, a known token, fast turn ends."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "token": TOKEN,
        "voice": VOICE,
        "smart_turn": False,
        "silence_timeout_seconds": 0.6,
        "max_sessions": 2,
        "shutdown_grace_seconds": 3.0,
    }
    base.update(overrides)
    return ServerConfig(**base)


def ws_url(server: Any, token: str | None = TOKEN, **query: Any) -> str:
    """The ``ws://`` URL of a server started with ``running_server``."""
    from airvoice.server.run import bound_port

    params = dict(query)
    if token is not None:
        params["token"] = token
    suffix = f"?{urlencode(params)}" if params else ""
    return f"ws://127.0.0.1:{bound_port(server)}/ws{suffix}"


def build_offline_engines(
    root: Path, max_new_tokens: int = 10, engine: str = "torch", **vllm_settings: Any
) -> Any:
    """``Engines`` with a tiny random Ultravox and the real int8 Kokoro-82M (ONNX).

    ``engine="vllm"`` serves the tiny Ultravox (head size 32, which vLLM's CPU attention needs)
    with the vLLM engine, sized as ``airvoice serve --engine vllm --device cpu`` sizes it
    (``vllm_settings``: ServerConfig fields such as ``max_model_len`` or ``kv_cache_gib``).
    """
    from airvoice.engines.kokoro import KokoroEngine
    from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
    from airvoice.pipeline import Engines
    from airvoice.testing.kokoro import build_kokoro_onnx
    from airvoice.testing.ultravox import build_tiny_ultravox

    # Random models end early at random; a fixed length gives Kokoro something to say.
    settings = GenerationSettings(
        temperature=1.0,
        top_p=1.0,
        seed=7,
        max_new_tokens=max_new_tokens,
        min_new_tokens=max_new_tokens,
    )
    if engine == "vllm":
        tiny = build_tiny_ultravox(root / "ultravox", head_size=32, strong_audio=True)
        ultravox: Any = load_vllm_engine(
            tiny.ultravox_dir, tiny.text_model_dir, settings, **vllm_settings
        )
    else:
        tiny = build_tiny_ultravox(root / "ultravox")
        ultravox = UltravoxEngine.load(tiny.ultravox_dir, tiny.text_model_dir, settings=settings)
    kokoro = KokoroEngine(build_kokoro_onnx(root / "kokoro"), backend="onnx", device="cpu")
    return Engines(ultravox, kokoro)


def load_vllm_engine(ultravox_dir: Path, text_model_dir: Path, settings: Any, **sizing: Any) -> Any:
    """The vLLM engine on the CPU, sized as the server sizes it there (fp32, eager, 32-token
    blocks; ``sizing``: ServerConfig fields): engines loaded this way on the same model and
    sizing share one ``AsyncLLM``."""
    from airvoice.engines.ultravox.backends.vllm_engine import VllmSizing, VllmUltravoxEngine
    from airvoice.engines.ultravox.loading import check_files, locate_files

    config = offline_server_config(
        engine="vllm",
        device="cpu",
        ultravox=str(ultravox_dir),
        text_model=str(text_model_dir),
        **sizing,
    )
    files = locate_files(ultravox_dir, text_model_dir)
    sizing = VllmSizing.for_device(config, files, check_files(files))
    return VllmUltravoxEngine.load(ultravox_dir, text_model_dir, sizing=sizing, settings=settings)


def spoken(engines: Any, text: str = QUESTION, voice: str = VOICE) -> np.ndarray:
    """``text`` spoken by Kokoro, as 16 kHz int16 (a question to send as the user)."""
    import soxr

    pcm24 = engines.kokoro.synthesize(text, voice).astype(np.float32)
    return np.clip(soxr.resample(pcm24, 24000, 16000), -32768, 32767).astype(np.int16)
