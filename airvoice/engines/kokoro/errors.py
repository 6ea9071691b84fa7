"""The errors the Kokoro engine raises; each message says what to do next."""

from __future__ import annotations

from airvoice.errors import AirvoiceError


class KokoroError(AirvoiceError):
    """Base class of the Kokoro engine's errors."""


class ModelFileMissingError(KokoroError, FileNotFoundError):
    """A model or voice file the engine was pointed at does not exist or is incomplete."""


class UnknownVoiceError(KokoroError, ValueError):
    """A voice name (or a part of a blend) that no loaded voice pack has."""


class InvalidSpeedError(KokoroError, ValueError):
    """A speaking speed outside the supported range."""


class G2PUnavailableError(KokoroError, RuntimeError):
    """The English G2P cannot run: the spaCy model or the espeak fallback is not installed."""
