"""Kokoro-82M text-to-speech: misaki G2P, torch or onnxruntime synthesis, sentence streaming.

>>> from airvoice.engines.kokoro import KokoroEngine     # doctest: +SKIP
>>> engine = KokoroEngine("/models/kokoro-v1.0.int8.onnx", "/models/voices-v1.0.bin")
>>> async for pcm16 in engine.stream("Hi! What can I do for you?", "af_heart"): ...
"""

from airvoice.engines.kokoro.backends import SAMPLE_RATE, SynthesisBackend, load_backend
from airvoice.engines.kokoro.engine import MAX_SPEED, MIN_SPEED, KokoroEngine
from airvoice.engines.kokoro.errors import (
    G2PUnavailableError,
    InvalidSpeedError,
    KokoroError,
    ModelFileMissingError,
    UnknownVoiceError,
)
from airvoice.engines.kokoro.voices import VoiceLibrary

__all__ = [
    "MAX_SPEED",
    "MIN_SPEED",
    "SAMPLE_RATE",
    "G2PUnavailableError",
    "InvalidSpeedError",
    "KokoroEngine",
    "KokoroError",
    "ModelFileMissingError",
    "SynthesisBackend",
    "UnknownVoiceError",
    "VoiceLibrary",
    "load_backend",
]
