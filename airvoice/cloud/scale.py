"""``airvoice scale``: add or remove replicas of a deployment made with ``deploy --replicas``.

A new replica is a copy of an existing one (same image, GPU, data center, network volume,
environment); once its ``/health`` answers, the dispatcher is told the new replica list
(``PUT /replicas``). A removed replica leaves the dispatcher's list first, is then drained
(``POST /drain``: no new session, live ones go on) and terminated once its last session has
ended, or when the drain timeout passes. New pods that fail to start are removed again.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from airvoice.cloud.endpoints import ProxyUrls
from airvoice.cloud.errors import RunPodError
from airvoice.cloud.models import Pod
from airvoice.cloud.pods import create_pod_or_clean_up, deployment_pods, remove_pod
from airvoice.cloud.progress import Reporter
from airvoice.cloud.readiness import wait_ready
from airvoice.cloud.runpod import RunPodClient
from airvoice.cloud.specs import (
    CONTAINER_DISK_GB,
    DISPATCH_PORT,
    MIN_CUDA_VERSION,
    ROLE_ENV,
    SERVER_PORT,
)
from airvoice.cloud.timing import Timing
from airvoice.errors import AirvoiceError

LIVE = ("RUNNING", "STARTING", "PROVISIONING", "CREATED")


class ScaleError(AirvoiceError):
    """The deployment could not be scaled; new pods that failed were removed."""


@dataclass
class ScaleResult:
    deployment: str
    replicas: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    cut_sessions: int = 0
    """Sessions still open on a removed replica when the drain timeout passed."""

    def to_json(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "replicas": self.replicas,
            "added": self.added,
            "removed": self.removed,
            "cut_sessions": self.cut_sessions,
        }


def replica_body(template: Pod, name: str) -> dict[str, Any]:
    """A ``CreatePodRequest`` for a copy of the replica ``template`` (same volume and env)."""
    raw = template.raw
    gpu = raw.get("gpu") or {}
    body: dict[str, Any] = {
        "name": name,
        "image": template.image,
        "gpu": {
            "id": template.gpu_id,
            "count": int(gpu.get("count", 1)),
            "minCudaVersion": MIN_CUDA_VERSION,
        },
        "cloud": raw.get("cloud", "SECURE"),
        "dataCenterIds": [template.data_center],
        "ports": [f"{SERVER_PORT}/http"],
        "env": dict(template.env),
        "args": raw.get("args") or "serve",
        "disk": raw.get("disk") or CONTAINER_DISK_GB,
    }
    mounts = raw.get("mounts")
    if mounts:
        body["mounts"] = mounts
    if raw.get("registry"):
        body["registry"] = raw["registry"]
    return body


class Scaler:
    """Brings the deployment ``name`` to ``target`` replicas."""

    def __init__(
        self,
        client: RunPodClient,
        name: str,
        reporter: Reporter,
        *,
        proxy: ProxyUrls | None = None,
        timing: Timing | None = None,
        drain_timeout_seconds: float = 600.0,
        drain_poll_seconds: float = 2.0,
    ) -> None:
        self.client = client
        self.name = name
        self.reporter = reporter
        self.proxy = proxy or ProxyUrls()
        self.timing = timing or Timing()
        self.drain_timeout = drain_timeout_seconds
        self.drain_poll = drain_poll_seconds

    def pods(self) -> tuple[list[Pod], Pod | None]:
        """The deployment's live replicas (oldest first) and its dispatcher."""
        pods = [p for p in deployment_pods(self.client, self.name) if p.status in LIVE]
        replicas = [p for p in pods if p.env.get(ROLE_ENV) == "replica" and p.is_gpu]
        dispatchers = [p for p in pods if p.env.get(ROLE_ENV) == "dispatcher"]
        return replicas, dispatchers[0] if dispatchers else None

    def run(self, target: int) -> ScaleResult:
        if target < 1:
            raise ScaleError(
                f"a deployment needs at least 1 replica; to remove it all, run "
                f"`airvoice pods down --name {self.name}`."
            )
        replicas, dispatcher = self.pods()
        if not replicas or dispatcher is None:
            raise ScaleError(
                f"no deployment {self.name!r} with replicas and a dispatcher: scale works on "
                "what `airvoice deploy --replicas N` made (see `airvoice pods list`)."
            )
        result = ScaleResult(self.name)
        if target > len(replicas):
            replicas = replicas + self._add(replicas[0], target - len(replicas), result)
            self._tell_dispatcher(dispatcher, replicas)
        elif target < len(replicas):
            victims = self._least_busy(replicas)[: len(replicas) - target]
            keep = [p for p in replicas if p not in victims]
            self._tell_dispatcher(dispatcher, keep)  # no new session goes to the victims
            for pod in victims:
                result.cut_sessions += self._drain(pod)
                remove_pod(self.client, pod.id)
                result.removed.append(pod.id)
                self.reporter.info(f"removed replica {pod.id}")
            replicas = keep
        result.replicas = [p.id for p in replicas]
        return result

    def _add(self, template: Pod, count: int, result: ScaleResult) -> list[Pod]:
        created: list[Pod] = []
        try:
            for _ in range(count):
                body = replica_body(template, f"{self.name}-{uuid.uuid4().hex[:8]}")
                with self.reporter.phase(f"creating a replica in {template.data_center}"):
                    try:
                        created.append(create_pod_or_clean_up(self.client, body))
                    except RunPodError as exc:
                        raise ScaleError(
                            f"a new replica could not be placed in {template.data_center} "
                            f"(the volume's data center): {exc}"
                        ) from exc
            for pod in created:
                health = self.proxy.health(pod.id, SERVER_PORT)
                wait_ready(self.client, pod.id, health, self.reporter, self.timing)
        except BaseException as exc:
            for pod in created:
                remove_pod(self.client, pod.id)
            gone = ", ".join(p.id for p in created)
            if isinstance(exc, AirvoiceError):
                note = f"\nRemoved the new pods: {gone}." if gone else ""
                raise ScaleError(f"{exc}{note}") from exc
            raise
        result.added = [p.id for p in created]
        return created

    def _health(self, pod: Pod) -> dict[str, Any] | None:
        try:
            body = httpx.get(self.proxy.health(pod.id, SERVER_PORT), timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def _least_busy(self, replicas: list[Pod]) -> list[Pod]:
        """Replicas by live sessions, fewest first (unreachable ones first of all)."""

        def sessions(pod: Pod) -> int:
            health = self._health(pod)
            return -1 if health is None else int(health.get("sessions", 0))

        return sorted(replicas, key=sessions)

    def _tell_dispatcher(self, dispatcher: Pod, replicas: list[Pod]) -> None:
        secret = dispatcher.env.get("AIRVOICE_DISPATCH_SECRET", "")
        urls = [self.proxy.base(p.id, SERVER_PORT) for p in replicas]
        url = f"{self.proxy.base(dispatcher.id, DISPATCH_PORT)}/replicas"
        with self.reporter.phase(f"telling the dispatcher: {len(urls)} replicas"):
            try:
                response = httpx.put(
                    url,
                    json={"replicas": urls},
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=30,
                )
            except httpx.HTTPError as exc:
                raise ScaleError(
                    f"the dispatcher pod {dispatcher.id} did not answer ({type(exc).__name__}); "
                    "check it with `airvoice pods status`, then run scale again."
                ) from None
        if response.status_code != 200:
            raise ScaleError(
                f"the dispatcher pod {dispatcher.id} refused the replica list "
                f"({response.status_code}); run scale again, or redeploy."
            )

    def _drain(self, pod: Pod) -> int:
        """Drain ``pod`` and wait for its sessions to end; the number still open at timeout."""
        token = pod.env.get("AIRVOICE_TOKEN", "")
        base = self.proxy.base(pod.id, SERVER_PORT)
        with self.reporter.phase(f"draining replica {pod.id}") as phase:
            try:
                answer = httpx.post(
                    f"{base}/drain", headers={"Authorization": f"Bearer {token}"}, timeout=30
                )
            except httpx.HTTPError:
                return 0  # not answering: nothing to finish there
            if answer.status_code != 202:
                self.reporter.warn(f"replica {pod.id} refused to drain ({answer.status_code})")
                return 0
            deadline = time.monotonic() + self.drain_timeout
            while True:
                health = self._health(pod)
                left = 0 if health is None else int(health.get("sessions", 0))
                if left == 0:
                    return 0
                if time.monotonic() > deadline:
                    self.reporter.warn(
                        f"replica {pod.id} still had {left} sessions after the drain timeout: "
                        "they end now"
                    )
                    return left
                phase.update(f"{left} sessions still open")
                time.sleep(self.drain_poll)
