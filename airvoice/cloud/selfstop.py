"""Pods that end themselves: the idle serving pod, and the prefetch pod once it is done.

RunPod injects ``RUNPOD_POD_ID`` and a pod-scoped ``RUNPOD_API_KEY`` into every pod. A
container that merely exits is restarted (and keeps billing, reloading its models in a loop),
so the pod asks the API to end it:

- Idle shutdown **terminates** the serving pod by default (``AIRVOICE_IDLE_ACTION=terminate``):
  the weights live on the network volume and a stopped pod may come back with zero GPUs
  (its machine's GPU rented meanwhile; RunPod docs, "Why do I have zero GPUs assigned to my
  Pod?"). ``stop`` keeps the pod (and its container disk, billed) for a later start.
  When the call fails, ``serve`` exits 1, never 0, and says so.
- The prefetch pod, after its marker, waits ``AIRVOICE_PREFETCH_GRACE_SECONDS`` for the CLI
  to remove it, then terminates itself: a CLI that died never leaves it idling with HF_TOKEN.

Outside a pod, nothing happens.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

IDLE_ACTION_ENV = "AIRVOICE_IDLE_ACTION"
GRACE_ENV = "AIRVOICE_PREFETCH_GRACE_SECONDS"


class IdleStop:
    """Watches the server's ``request_exit`` (called by idle shutdown only)."""

    def __init__(self, state: Any) -> None:
        self.fired = False
        self.ended: str | None = None
        """The action that ended the pod (``terminate`` or ``stop``), once done."""
        original = state.request_exit

        def request_exit() -> None:
            self.fired = True
            original()

        state.request_exit = request_exit


def in_runpod_pod() -> bool:
    """Whether this process runs in a RunPod pod with an API key to stop it."""
    return bool(os.environ.get("RUNPOD_POD_ID") and os.environ.get("RUNPOD_API_KEY"))


def end_this_pod(action: str = "terminate", attempts: int = 4) -> str | None:
    """Terminate (or stop) the pod this process runs in; the action done, or None if it failed.

    ``stop`` falls back to ``terminate`` when RunPod refuses it (400); a pod already gone
    (404) or already stopping (409 on stop) counts as done.
    """
    from airvoice.cloud.credentials import ApiKey
    from airvoice.cloud.errors import (
        BadRequestError,
        ConflictError,
        NotFoundError,
        RunPodError,
    )
    from airvoice.cloud.runpod import RetryPolicy, RunPodClient

    pod_id = os.environ["RUNPOD_POD_ID"]
    key = ApiKey(os.environ["RUNPOD_API_KEY"], "RUNPOD_API_KEY")
    with RunPodClient(key, retry=RetryPolicy(attempts=attempts, backoff_seconds=2.0)) as client:
        if action == "stop":
            try:
                client.stop_pod(pod_id)
                return "stop"
            except ConflictError:
                return "stop"  # already stopping or stopped
            except BadRequestError as exc:
                log.warning(
                    "RunPod refused to stop pod %s (%s); terminating it", pod_id, exc.detail
                )
            except RunPodError as exc:
                log.error("could not stop pod %s: %s", pod_id, exc)
                return None
        try:
            client.terminate_pod(pod_id)
            return "terminate"
        except NotFoundError:
            return "terminate"
        except RunPodError as exc:
            log.error("could not terminate pod %s: %s", pod_id, exc)
    return None


@contextlib.contextmanager
def stop_pod_when_idle(state: Any) -> Iterator[IdleStop]:
    """Around ``server.run()``: if idle shutdown ended the server inside a pod, end the pod.

    Raises ``SystemExit(1)`` when the pod could not be ended, so the process never exits 0
    while the pod keeps billing.
    """
    guard = IdleStop(state)
    yield guard
    if guard.fired and in_runpod_pod():
        action = os.environ.get(IDLE_ACTION_ENV, "terminate").strip().lower() or "terminate"
        if action not in ("terminate", "stop"):
            log.warning("%s=%r is not terminate or stop: terminating", IDLE_ACTION_ENV, action)
            action = "terminate"
        pod_id = os.environ["RUNPOD_POD_ID"]
        log.info("idle shutdown inside RunPod pod %s: %s the pod", pod_id, action)
        guard.ended = end_this_pod(action)
        if guard.ended is None:
            log.error(
                "idle shutdown could not %s pod %s, which is still billing: %s it from the "
                "RunPod console or with `airvoice pods rm %s`",
                action,
                pod_id,
                action,
                pod_id,
            )
            raise SystemExit(1)


def end_prefetch_pod(
    grace_seconds: float | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_attempts: int | None = None,
) -> None:
    """After the prefetch marker: wait the grace period, then terminate this pod.

    The CLI normally removes the pod first (then this process dies with it). Outside a pod
    this waits forever, as before. A failed terminate is retried with backoff: exiting
    instead would make RunPod restart the container and download again.
    """
    if grace_seconds is None:
        try:
            grace_seconds = float(os.environ.get(GRACE_ENV, "300"))
        except ValueError:
            grace_seconds = 300.0
    if not in_runpod_pod():
        threading.Event().wait()
        return
    sleep(max(0.0, grace_seconds))
    pod_id = os.environ["RUNPOD_POD_ID"]
    attempt = 0
    while True:
        attempt += 1
        log.info(
            "prefetch done and not removed after %g s: terminating pod %s", grace_seconds, pod_id
        )
        if end_this_pod("terminate") is not None:
            return
        if max_attempts is not None and attempt >= max_attempts:
            return
        sleep(min(300.0, 10.0 * 2 ** (attempt - 1)))
