"""Waiting for a serving pod: ``RUNNING``, then ``/health`` 200 through RunPod's proxy.

RUNNING is all the API can say: ``runtime.ports`` lists only TCP mappings (every Pod example
of the OpenAPI document shows ``ports: ["8888/http", "22/tcp"]`` with just the 22/tcp mapping
at runtime), so an HTTP port is never listed there and only the proxy can tell whether the
server answers. While the pod is not yet RUNNING its log is read too: an image that cannot be
pulled, or a driver too old for the image, fails at once instead of after the whole timeout.
"""

from __future__ import annotations

import time

import httpx

from airvoice.cloud.errors import TransportError
from airvoice.cloud.logs import LogCursor, start_failure
from airvoice.cloud.models import Pod
from airvoice.cloud.progress import Reporter
from airvoice.cloud.runpod import RunPodClient
from airvoice.cloud.timing import Timing
from airvoice.errors import AirvoiceError


class NotReadyError(AirvoiceError):
    """The pod went to ERROR, stopped, or was not healthy in time; carries its log tail."""

    def __init__(self, message: str, tail: list[str]) -> None:
        self.tail = tail
        shown = "\n".join(f"  | {line}" for line in tail) or "  (no log lines)"
        super().__init__(f"{message}. Last lines of the pod's log:\n{shown}")


def check_start(cursor: LogCursor, pod_id: str) -> None:
    """Read the new log lines; raise ``NotReadyError`` if one says the container cannot start."""
    for event in cursor.poll(until=lambda e: start_failure(e.line) is not None):
        why = start_failure(event.line)
        if why:
            raise NotReadyError(f"pod {pod_id} cannot start: {why}", cursor.tail(12))


def wait_ready(
    client: RunPodClient,
    pod_id: str,
    health_url: str,
    reporter: Reporter,
    timing: Timing,
) -> Pod:
    """Poll the pod until it runs, then its health URL until 200; raise ``NotReadyError``."""
    deadline = time.monotonic() + timing.ready_timeout_seconds
    cursor = LogCursor(client, pod_id, idle_seconds=timing.log_idle_seconds)

    def fail(why: str) -> NotReadyError:
        cursor.poll()
        return NotReadyError(why, cursor.tail())

    minutes = f"{timing.ready_timeout_seconds / 60:g} min"
    with reporter.phase(f"starting pod {pod_id}") as phase:
        while True:
            try:
                pod = client.get_pod(pod_id)
            except TransportError:
                pod = None
            if pod is not None:
                if pod.status in ("ERROR", "EXITED", "TERMINATED"):
                    raise fail(f"pod {pod_id} went to {pod.status}")
                if pod.status == "RUNNING":
                    break
                phase.update(
                    {"PROVISIONING": "provisioning", "STARTING": "pulling the image, starting"}.get(
                        pod.status, pod.status.lower()
                    )
                )
            check_start(cursor, pod_id)
            if time.monotonic() > deadline:
                raise fail(f"pod {pod_id} was not running after {minutes}")
            time.sleep(timing.poll_seconds)

    with (
        reporter.phase("waiting for the voice server (loading the models)") as phase,
        httpx.Client(timeout=10.0, follow_redirects=True) as http,
    ):
        while True:
            try:
                response = http.get(health_url)
                if response.status_code == 200:
                    return pod
                reason = _reason(response)
                phase.update(f"/health {response.status_code}{': ' + reason if reason else ''}")
            except httpx.HTTPError as exc:
                phase.update(f"proxy not answering yet ({type(exc).__name__})")
            try:
                status = client.get_pod(pod_id).status
            except TransportError:
                status = "RUNNING"
            if status in ("ERROR", "EXITED", "TERMINATED"):
                raise fail(f"pod {pod_id} went to {status}")
            if time.monotonic() > deadline:
                raise fail(f"the server on pod {pod_id} was not healthy after {minutes}")
            time.sleep(timing.poll_seconds)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""
