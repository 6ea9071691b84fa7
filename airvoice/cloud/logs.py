"""Reading a pod's log stream a bit at a time, resuming where the last read stopped."""

from __future__ import annotations

import time
from collections import deque

import httpx

from airvoice.cloud.errors import RunPodError
from airvoice.cloud.models import LogEvent
from airvoice.cloud.runpod import RunPodClient


class LogCursor:
    """New log lines of one pod on each ``poll()``; the last ``keep`` lines stay for a tail.

    RunPod's stream stays open while the pod lives, so each read stops when the stream has
    been quiet for ``idle_seconds`` and the next one resumes with ``Last-Event-ID``.
    """

    def __init__(
        self,
        client: RunPodClient,
        pod_id: str,
        *,
        keep: int = 200,
        idle_seconds: float = 1.0,
        max_seconds: float = 10.0,
    ) -> None:
        self.client = client
        self.pod_id = pod_id
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.lines: deque[str] = deque(maxlen=keep)
        self._last_id: str | None = None

    def poll(self) -> list[LogEvent]:
        """The lines that arrived since the last call (none if the logs are unreachable)."""
        events: list[LogEvent] = []
        deadline = time.monotonic() + self.max_seconds
        try:
            with self.client.pod_log_stream(
                self.pod_id,
                tail=None if self._last_id else self.lines.maxlen,
                last_event_id=self._last_id,
                read_timeout=self.idle_seconds,
            ) as stream:
                for event in stream:
                    events.append(event)
                    if event.id:
                        self._last_id = event.id
                    self.lines.append(event.line)
                    if time.monotonic() > deadline:
                        break
        except (httpx.TimeoutException, httpx.TransportError, RunPodError):
            pass
        return events

    def tail(self, lines: int = 30) -> list[str]:
        """The last ``lines`` lines seen."""
        return list(self.lines)[-lines:]
