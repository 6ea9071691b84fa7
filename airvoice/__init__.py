"""airvoice: a private, low-latency voice assistant on a GPU you rent.

The public API is deliberately small and imported lazily, so that
``import airvoice`` never pulls torch or pipecat.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
