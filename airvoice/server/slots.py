"""Session slots: at most N live sessions; the next one is refused with close code 1008."""

from __future__ import annotations

import asyncio
import contextlib
import time

FULL_CLOSE_CODE = 1008


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
