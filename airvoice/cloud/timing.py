"""How often the deploy workflow polls and how long it waits (short in tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Poll interval and time limits of a deploy, in seconds."""

    poll_seconds: float = 5.0
    ready_timeout_seconds: float = 20 * 60.0
    """RUNNING and a healthy server; image pulls alone can take many minutes."""
    prefetch_timeout_seconds: float = 60 * 60.0
    log_idle_seconds: float = 1.0
