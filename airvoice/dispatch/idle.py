"""The dispatcher pod ends itself once its replicas are gone.

Each replica ends its own pod after its idle shutdown; the dispatcher's CPU pod would go on
billing in front of nothing. So, inside a RunPod pod (``RUNPOD_POD_ID`` and the pod-scoped
``RUNPOD_API_KEY`` that RunPod injects), once no replica has answered ``/health`` for
``idle_timeout_minutes``, the dispatcher asks RunPod's API to terminate (or stop) its own pod,
as ``airvoice.cloud.selfstop`` does for a serving pod. A replica that answers, whatever its
state (serving, full, draining, loading), keeps the dispatcher up; a replica serving sessions
answers. A failed call is logged (without the key) and retried with backoff. Outside a pod
nothing happens.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from airvoice.cloud.selfstop import end_this_pod, in_runpod_pod
from airvoice.dispatch.replicas import ReplicaPool

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 300.0


class PodIdleStop:
    """Watches a pool; ends this pod once no replica has answered for ``timeout_seconds``."""

    def __init__(
        self,
        pool: ReplicaPool,
        timeout_seconds: float,
        action: str = "terminate",
        *,
        check_seconds: float = 1.0,
        end: Callable[[str], str | None] = end_this_pod,
    ) -> None:
        self.pool = pool
        self.timeout = timeout_seconds
        self.action = action
        self.check_seconds = check_seconds
        self._end = end
        self.last_alive = time.monotonic()
        """When a replica last answered (or when the watch began)."""
        self.ended: str | None = None
        """The action that ended the pod (``terminate`` or ``stop``), once done."""

    def replicas_alive(self) -> bool:
        """Whether any replica answered its last ``/health`` poll."""
        return any(r.reachable for r in self.pool.replicas.values())

    async def run(self) -> None:
        """Check every ``check_seconds`` until the pod has been ended."""
        pod_id = os.environ.get("RUNPOD_POD_ID", "?")
        failures = 0
        while self.ended is None:
            await asyncio.sleep(self.check_seconds)
            now = time.monotonic()
            if self.replicas_alive():
                self.last_alive = now
                continue
            gone = now - self.last_alive
            if gone < self.timeout:
                continue
            log.info(
                "no replica has answered for %.0f s: %s the dispatcher pod %s",
                gone,
                self.action,
                pod_id,
            )
            self.ended = await asyncio.to_thread(self._end, self.action)
            if self.ended is None:
                failures += 1
                wait = min(MAX_RETRY_SECONDS, self.check_seconds * 2**failures)
                log.error(
                    "could not %s the dispatcher pod %s, which is still billing; trying again "
                    "in %.0f s (or remove it with `airvoice pods rm %s`)",
                    self.action,
                    pod_id,
                    wait,
                    pod_id,
                )
                await asyncio.sleep(wait)
                if self.replicas_alive():  # a replica came back meanwhile: keep serving
                    self.last_alive = time.monotonic()


def pod_idle_stop(
    pool: ReplicaPool, timeout_minutes: float, action: str, check_seconds: float
) -> PodIdleStop | None:
    """The watch for a dispatcher in a RunPod pod (None outside one, or with timeout 0)."""
    if timeout_minutes <= 0:
        return None
    if not in_runpod_pod():
        log.debug("not in a RunPod pod: the dispatcher's idle stop is off")
        return None
    return PodIdleStop(pool, timeout_minutes * 60, action, check_seconds=check_seconds)
