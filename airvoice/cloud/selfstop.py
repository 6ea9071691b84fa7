"""The cost guard: when idle shutdown fires inside a RunPod pod, the pod stops itself.

RunPod injects ``RUNPOD_POD_ID`` and a pod-scoped ``RUNPOD_API_KEY`` into every pod. A
container that merely exits would be restarted (and keep billing), so after the server has
drained, ``stop`` is asked of the API (``terminate`` if stop is refused). Outside a pod,
nothing happens.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)


class IdleStop:
    """Watches the server's ``request_exit`` (called by idle shutdown only)."""

    def __init__(self, state: Any) -> None:
        self.fired = False
        original = state.request_exit

        def request_exit() -> None:
            self.fired = True
            original()

        state.request_exit = request_exit


def in_runpod_pod() -> bool:
    """Whether this process runs in a RunPod pod with an API key to stop it."""
    return bool(os.environ.get("RUNPOD_POD_ID") and os.environ.get("RUNPOD_API_KEY"))


def stop_this_pod() -> str | None:
    """Stop (else terminate) the pod this process runs in; returns the action taken."""
    from airvoice.cloud.credentials import ApiKey
    from airvoice.cloud.errors import BadRequestError, ConflictError, RunPodError
    from airvoice.cloud.runpod import RetryPolicy, RunPodClient

    pod_id = os.environ["RUNPOD_POD_ID"]
    key = ApiKey(os.environ["RUNPOD_API_KEY"], "RUNPOD_API_KEY")
    with RunPodClient(key, retry=RetryPolicy(attempts=4, backoff_seconds=2.0)) as client:
        try:
            client.stop_pod(pod_id)
            return "stop"
        except ConflictError:
            return None  # already stopping or stopped: nothing to do
        except BadRequestError as exc:
            log.warning("RunPod refused to stop pod %s (%s); terminating it", pod_id, exc.detail)
            try:
                client.terminate_pod(pod_id)
                return "terminate"
            except RunPodError as again:
                log.error("could not terminate pod %s: %s", pod_id, again)
        except RunPodError as exc:
            log.error("could not stop pod %s: %s; stop it from the console", pod_id, exc)
    return None


@contextlib.contextmanager
def stop_pod_when_idle(state: Any) -> Iterator[IdleStop]:
    """Around ``server.run()``: if idle shutdown ended the server inside a pod, stop the pod."""
    guard = IdleStop(state)
    yield guard
    if guard.fired and in_runpod_pod():
        log.info(
            "idle shutdown inside RunPod pod %s: stopping the pod", os.environ["RUNPOD_POD_ID"]
        )
        stop_this_pod()
