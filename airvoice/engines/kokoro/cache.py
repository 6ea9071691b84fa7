"""One process-wide cache of loaded models, voices and G2P, shared by every engine.

Loading Kokoro takes seconds and hundreds of megabytes; a server with many sessions must do it
once. Entries are keyed by what identifies them (kind, resolved paths, device), and two threads
asking for the same key at once load it only once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")

_entries: dict[Hashable, Any] = {}
_key_locks: dict[Hashable, threading.Lock] = {}
_guard = threading.Lock()


def shared(key: Hashable, load: Callable[[], T]) -> T:
    """The object cached under ``key``, calling ``load()`` the first time it is asked for."""
    with _guard:
        if key in _entries:
            return _entries[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _guard:
            if key in _entries:
                return _entries[key]
        value = load()
        with _guard:
            _entries[key] = value
            _key_locks.pop(key, None)
        return value


def clear() -> None:
    """Forget every cached object (they are freed once no engine holds them)."""
    with _guard:
        _entries.clear()
