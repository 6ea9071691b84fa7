"""airvoice: a private, low-latency voice assistant on a GPU you rent.

The public API is deliberately small and imported lazily, so that
``import airvoice`` never pulls torch or pipecat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["VoiceClient", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from airvoice.client import VoiceClient


def __getattr__(name: str) -> Any:
    if name == "VoiceClient":
        from airvoice.client import VoiceClient

        return VoiceClient
    raise AttributeError(f"module 'airvoice' has no attribute {name!r}")
