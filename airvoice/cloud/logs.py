"""Reading a pod's log stream a bit at a time, resuming where the last read stopped."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

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

    def poll(self, until: Callable[[LogEvent], bool] | None = None) -> list[LogEvent]:
        """The lines that arrived since the last call (none if the logs are unreachable).

        Stops early after a line for which ``until`` is true.
        """
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
                    if time.monotonic() > deadline or (until is not None and until(event)):
                        break
        except (httpx.TimeoutException, httpx.TransportError, RunPodError):
            pass
        return events

    def tail(self, lines: int = 30) -> list[str]:
        """The last ``lines`` lines seen."""
        return list(self.lines)[-lines:]


def start_failure(line: str) -> str | None:
    """What a RunPod system log line says went wrong starting the container, if it does.

    RunPod retries a container that cannot start for as long as the pod lives, so these lines
    repeat while the pod stays STARTING; waiting longer never helps. The wording is Docker's,
    as RunPod's system log shows it (runpod/runpod-python#165, dstackai/dstack#2507,
    docs.runpod.io/pods/manage-pods "CUDA Version Compatibility").
    """
    text = line.strip()
    if "error pulling image" in text or "pull access denied" in text:
        return (
            f"RunPod cannot pull the image ({text}). A new GHCR package is private: make it "
            "public (GitHub: the package's settings, Change visibility), or store a registry "
            "credential in RunPod (console: Settings, Container Registry Auth) and pass its id "
            "with --registry-auth ID"
        )
    if "unsatisfied condition: cuda" in text:
        return (
            f"the host's GPU driver is older than the CUDA the image needs ({text}). Deploy "
            "again (airvoice asks RunPod for a host with a new enough driver), or choose "
            "another --gpu or --data-center"
        )
    return None
