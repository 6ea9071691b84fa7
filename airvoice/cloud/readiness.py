"""Waiting for a serving pod: ``RUNNING`` with its port published, then ``/health`` 200."""

from __future__ import annotations

import time

import httpx

from airvoice.cloud.errors import TransportError
from airvoice.cloud.logs import LogCursor
from airvoice.cloud.models import Pod
from airvoice.cloud.progress import Reporter
from airvoice.cloud.runpod import RunPodClient
from airvoice.cloud.specs import SERVER_PORT
from airvoice.cloud.timing import Timing
from airvoice.errors import AirvoiceError


class NotReadyError(AirvoiceError):
    """The pod went to ERROR, stopped, or was not healthy in time; carries its log tail."""

    def __init__(self, message: str, tail: list[str]) -> None:
        self.tail = tail
        shown = "\n".join(f"  | {line}" for line in tail) or "  (no log lines)"
        super().__init__(f"{message}. Last lines of the pod's log:\n{shown}")


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
                if pod.status == "RUNNING" and pod.has_port(SERVER_PORT):
                    break
                phase.update(
                    {"PROVISIONING": "provisioning", "STARTING": "pulling the image, starting"}.get(
                        pod.status, pod.status.lower()
                    )
                )
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
