"""Session slots: at most N live sessions; the next one is refused with close code 1008.

A slot is held by a ``SlotLease``, given back when the client's socket closes (the session's
pipeline may still be tearing down), so that a client that leaves never blocks the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

FULL_CLOSE_CODE = 1008
DEFAULT_SESSIONS = 4
"""Sessions at once when neither the settings nor the engine set a number (the torch engine)."""

log = logging.getLogger(__name__)


def session_limit(configured: int | None, engine_health: dict[str, Any]) -> int:
    """The server's session limit: the configured one, else what the engine holds at once
    (vLLM: the conversations of ``max_model_len`` tokens its KV cache fits), else 4.

    A configured limit above the engine's capacity is kept, with a warning: past the capacity
    a turn may wait for KV memory (vLLM preempts), which every session then hears.
    """
    capacity = engine_health.get("session_capacity")
    if configured is None:
        return int(capacity) if capacity else DEFAULT_SESSIONS
    if capacity and configured > capacity:
        log.warning(
            "max_sessions %d is more than the %d conversations the %s engine's KV cache holds "
            "at once (%s tokens); past that a turn may wait for memory. Lower max_sessions, "
            "lower AIRVOICE_MAX_MODEL_LEN, or leave max_sessions unset to follow the cache.",
            configured,
            capacity,
            engine_health.get("name", "Ultravox"),
            engine_health.get("kv_cache_tokens"),
        )
    return configured


class SessionSlots:
    """Counts live sessions against a limit and remembers when the last one ended."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("max sessions must be at least 1")
        self.limit = limit
        self.active = 0
        self.total = 0
        self.idle_since = time.monotonic()
        self._changed = asyncio.Event()

    @property
    def free(self) -> int:
        return self.limit - self.active

    def try_acquire(self) -> bool:
        """Take a slot if one is free."""
        if self.active >= self.limit:
            return False
        self.active += 1
        self.total += 1
        self._changed.set()
        return True

    def release(self) -> None:
        """Give a slot back (once per successful ``try_acquire``)."""
        self.active = max(0, self.active - 1)
        if self.active == 0:
            self.idle_since = time.monotonic()
        self._changed.set()

    def notify(self) -> None:
        """Wake whoever waits in ``wait_changed`` (a setting changed)."""
        self._changed.set()

    def idle_seconds(self) -> float:
        """Seconds since the last session ended; 0 while any is open."""
        return 0.0 if self.active else time.monotonic() - self.idle_since

    async def wait_changed(self, timeout: float) -> None:
        """Wait until a slot is taken or given back, or ``timeout`` passes."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def lease(self, wait_seconds: float = 0.0) -> SlotLease | None:
        """A slot, waiting up to ``wait_seconds`` for one to be given back; None if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while not self.try_acquire():
            left = deadline - loop.time()
            if left <= 0:
                return None
            await self.wait_changed(left)
        return SlotLease(self)


class SlotLease:
    """One taken slot; ``release()`` gives it back once, however often it is called."""

    def __init__(self, slots: SessionSlots) -> None:
        self._slots: SessionSlots | None = slots

    @property
    def held(self) -> bool:
        return self._slots is not None

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.release()
