"""Give a closed session's memory back to the OS.

Measured (issue 15): each session that opens and closes left about 6 MB of the process's RSS
behind (40 sessions: +240 MB). Two causes, both needed: a session's Pipecat objects refer to
each other in cycles, so they wait for Python's rare full garbage collection; and what they
free stays in glibc's per-thread arenas. ``gc.collect()`` then ``malloc_trim(0)`` gives it all
back (the same 40 sessions: -290 MB, below the level before them); trimming alone does not.

``MemoryTrimmer`` does both shortly after a session ends (debounced) and every ``interval``
seconds. ``freeze_startup_objects`` moves the loaded models' objects out of the collector's
sight first, so a collection only walks what sessions made (milliseconds).

Measured again over long sessions: even so, RSS kept creeping up by about 30 MB per 40 s of
three honest sessions (934 -> 1060 MB over five rounds), with Python's object count flat. The
cause is glibc's per-thread arenas (up to 8 per core): Kokoro, ONNX Runtime, Smart Turn and
asyncio's worker threads each fragment an arena of their own, which trimming cannot fully
give back. ``limit_malloc_arenas`` caps them at two before the server starts its threads; the
same rounds then stay flat (856 -> 891 -> 887 -> 888 -> 890 MB).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def _glibc(*names: str) -> list[Any] | None:
    """glibc's functions of these names, or None on another C library (musl, macOS)."""
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    try:
        libc = ctypes.CDLL(path)
        return [getattr(libc, name) for name in names]
    except (OSError, AttributeError):
        return None


def _malloc_trim() -> Callable[[], None] | None:
    found = _glibc("malloc_trim")
    if found is None:
        return None
    (trim,) = found
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)


M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
MALLOC_ARENAS = 2


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Let glibc make at most ``arenas`` malloc arenas from now on (as ``MALLOC_ARENA_MAX``
    does); whether it could (False on other C libraries)."""
    found = _glibc("mallopt")
    if found is None:
        return False
    (mallopt,) = found
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))


def malloc_arenas() -> int | None:
    """How many malloc arenas glibc has made in this process (None if not glibc)."""
    found = _glibc("malloc_info", "fdopen", "fclose")
    if found is None:
        return None
    info, fopen, fclose = found
    fopen.argtypes, fopen.restype = [ctypes.c_int, ctypes.c_char_p], ctypes.c_void_p
    info.argtypes, info.restype = [ctypes.c_int, ctypes.c_void_p], ctypes.c_int
    fclose.argtypes = [ctypes.c_void_p]
    with tempfile.TemporaryFile() as out:
        stream = fopen(os.dup(out.fileno()), b"w")
        if not stream:
            return None
        info(0, stream)
        fclose(stream)
        out.seek(0)
        return out.read().count(b"<heap nr=")


def freeze_startup_objects() -> None:
    """Exclude everything alive now (models, modules) from future garbage collections."""
    gc.collect()
    gc.freeze()


class MemoryTrimmer:
    """Runs ``malloc_trim(0)`` in a worker thread when asked (debounced) and periodically."""

    def __init__(self, delay: float = 1.0, interval: float = 60.0) -> None:
        self.delay, self.interval = delay, interval
        self.trims = 0
        self.last_collect_ms = 0.0
        self._trim = _malloc_trim()
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._trim is not None and self._task is None:
            self._task = asyncio.create_task(self._run(), name="airvoice-memory-trimmer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request(self) -> None:
        """A session ended: trim soon."""
        self._wanted.set()

    async def _run(self) -> None:
        assert self._trim is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), self.interval)
            await asyncio.sleep(self.delay)  # let the teardown of several sessions finish
            self._wanted.clear()
            started = time.perf_counter()
            gc.collect()  # a session's objects form cycles: free them now, not someday
            self.last_collect_ms = 1000 * (time.perf_counter() - started)
            try:
                await asyncio.to_thread(self._trim)
                self.trims += 1
            except Exception as exc:  # never let housekeeping end the server
                log.warning("could not give memory back: %s", exc)
