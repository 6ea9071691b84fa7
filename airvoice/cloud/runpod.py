"""A small sync client for RunPod's REST API v2 (``https://api.runpod.io/v2``).

Paths and bodies follow RunPod's OpenAPI document exactly (tests validate every request and
response against it). Errors come back typed (``airvoice.cloud.errors``); 429 waits as
``Retry-After`` says, 5xx and timeouts are retried a bounded number of times with backoff.
The API key goes into the Authorization header and nowhere else.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from airvoice import __version__
from airvoice.cloud.credentials import ApiKey
from airvoice.cloud.errors import (
    RunPodError,
    ServerError,
    TransportError,
    UnreachableError,
    error_from_problem,
)
from airvoice.cloud.models import DataCenter, GpuType, LogEvent, Pod, Volume

DEFAULT_BASE_URL = "https://api.runpod.io/v2"
BASE_URL_ENV = "AIRVOICE_RUNPOD_API_URL"
"""Overrides the API's base URL (tests point it at a fake RunPod on 127.0.0.1)."""


def default_base_url() -> str:
    """``AIRVOICE_RUNPOD_API_URL`` if set, else RunPod's production API."""
    return os.environ.get(BASE_URL_ENV, "").strip() or DEFAULT_BASE_URL


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the client tries before giving up on 429, 5xx and timeouts."""

    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 16.0
    max_retry_after_seconds: float = 120.0

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with a little jitter, for ``attempt`` 1, 2, ..."""
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return base * (0.8 + 0.4 * random.random())


def _retry_after(response: httpx.Response, fallback: float) -> float:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        return fallback


def _csv(values: list[str] | None) -> str | None:
    return ",".join(values) if values else None


class RunPodClient:
    """RunPod REST v2: pods, network volumes, the GPU/CPU/data-center catalog."""

    def __init__(
        self,
        api_key: ApiKey,
        base_url: str | None = None,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = (base_url or default_base_url()).rstrip("/")
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._on_wait = on_wait
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={
                "Authorization": f"Bearer {api_key.reveal()}",
                "Accept": "application/json, application/problem+json",
                "User-Agent": f"airvoice/{__version__}",
            },
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"RunPodClient(base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _wait(self, seconds: float, why: str) -> None:
        if self._on_wait is not None:
            self._on_wait(f"{why}; retrying in {seconds:.1f} s")
        self._sleep(seconds)

    def _send(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool = True,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """One API call with RunPod's retry rules; returns a 2xx response or raises."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            request = self._http.build_request(
                method,
                path.lstrip("/"),
                params=query or None,
                json=body,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = self._http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if last:
                    raise UnreachableError(
                        f"could not reach RunPod for {operation}: {type(exc).__name__}",
                        operation=operation,
                    ) from exc
                self._wait(policy.backoff(attempt), f"{operation}: RunPod unreachable")
                continue
            except httpx.TransportError as exc:  # sent, but no (complete) answer
                if last or not idempotent:
                    raise TransportError(
                        f"no answer from RunPod for {operation}: {type(exc).__name__}",
                        operation=operation,
                    ) from exc
                self._wait(policy.backoff(attempt), f"{operation}: {type(exc).__name__}")
                continue
            if response.is_success:
                return response
            response.read()
            response.close()
            status = response.status_code
            problem = _problem(response)
            if status == 429:
                delay = _retry_after(response, policy.backoff(attempt))
                if last or delay > policy.max_retry_after_seconds:
                    raise error_from_problem(status, problem, operation)
                self._wait(delay, f"{operation}: rate limited (Retry-After {delay:g} s)")
                continue
            if status >= 500:
                # A create that answered 502/504 may have happened: the caller looks it up
                # by name before it tries again (see ``_create``).
                if last or not idempotent:
                    raise error_from_problem(status, problem, operation)
                self._wait(policy.backoff(attempt), f"{operation}: RunPod answered {status}")
                continue
            raise error_from_problem(status, problem, operation)
        raise ServerError(f"{operation} failed", operation=operation)  # pragma: no cover

    def _json(self, method: str, path: str, operation: str, **kwargs: Any) -> Any:
        response = self._send(method, path, operation, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            raise RunPodError(
                f"RunPod sent a reply to {operation} that is not JSON", operation=operation
            ) from exc

    # -- pods ------------------------------------------------------------------------------

    def list_pods(self) -> list[Pod]:
        """Every pod of the account (``GET /pods``)."""
        data = self._json("GET", "pods", "listPods")
        return [Pod.from_api(p) for p in data.get("pods", [])]

    def get_pod(self, pod_id: str) -> Pod:
        """One pod (``GET /pods/{id}``)."""
        return Pod.from_api(self._json("GET", f"pods/{pod_id}", "getPod"))

    def create_pod(self, request: dict[str, Any]) -> Pod:
        """Create a pod from a ``CreatePodRequest`` body; it starts in ``PROVISIONING``.

        ``request["name"]`` must be unique: when the answer is lost (no answer, or a 5xx that
        may hide a create that happened), the pod is looked up by that name before the create
        is tried again, so a retry never makes a second billing pod.
        """
        name = request["name"]

        def find() -> Pod | None:
            return next((p for p in self.list_pods() if p.name == name), None)

        return self._create(
            lambda: Pod.from_api(
                self._json("POST", "pods", "createPod", body=request, idempotent=False)
            ),
            find,
            "createPod",
        )

    def _create(self, send: Callable[[], Any], find: Callable[[], Any], operation: str) -> Any:
        """``send`` a create; on a lost answer, ``find`` what it made before trying again."""
        policy = self.retry
        for attempt in range(1, policy.attempts + 1):
            try:
                return send()
            except UnreachableError:
                raise  # never sent, and already retried
            except (ServerError, TransportError) as exc:
                if attempt == policy.attempts:
                    raise
                self._wait(policy.backoff(attempt), f"{operation}: {exc.detail or exc}")
                made = find()
                if made is not None:
                    return made
        raise ServerError(f"{operation} failed", operation=operation)  # pragma: no cover

    def pod_action(self, pod_id: str, action: str) -> Pod | None:
        """``start``, ``stop``, ``restart`` or ``terminate`` (which returns nothing)."""
        data = self._json("POST", f"pods/{pod_id}/action", "podAction", body={"action": action})
        return Pod.from_api(data) if data else None

    def start_pod(self, pod_id: str) -> Pod | None:
        """Boot an ``EXITED`` or ``ERROR`` pod back toward ``RUNNING``."""
        return self.pod_action(pod_id, "start")

    def stop_pod(self, pod_id: str) -> Pod | None:
        """Stop a pod: compute is released (billing stops), its disk is kept."""
        return self.pod_action(pod_id, "stop")

    def terminate_pod(self, pod_id: str) -> None:
        """Terminate a pod for good (``action: terminate``)."""
        self.pod_action(pod_id, "terminate")

    def delete_pod(self, pod_id: str) -> None:
        """Terminate and delete a pod (``DELETE /pods/{id}``); its network volume stays."""
        self._json("DELETE", f"pods/{pod_id}", "deletePod")

    @contextlib.contextmanager
    def pod_log_stream(
        self,
        pod_id: str,
        *,
        tail: int | None = None,
        since: str | None = None,
        last_event_id: str | None = None,
        source: str | None = None,
        read_timeout: float | None = None,
    ) -> Iterator[Iterator[LogEvent]]:
        """The pod's log as server-sent events (``GET /pods/{id}/logs``).

        RunPod keeps the stream open while the pod lives: give ``read_timeout`` to stop
        waiting when it goes quiet (``httpx.ReadTimeout`` is raised from the iterator).
        """
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(self._http.timeout.connect or 10.0, read=read_timeout)
        response = self._send(
            "GET",
            f"pods/{pod_id}/logs",
            "getPodLogs",
            params={"tail": tail, "since": since, "source": source},
            headers={
                "Accept": "text/event-stream",
                **({"Last-Event-ID": last_event_id} if last_event_id else {}),
            },
            stream=True,
            timeout=timeout,
        )
        try:
            yield parse_sse(response.iter_lines())
        finally:
            response.close()

    def tail_logs(
        self, pod_id: str, lines: int = 40, *, idle_seconds: float = 2.0, max_seconds: float = 10.0
    ) -> list[LogEvent]:
        """The last ``lines`` log lines (the stream is read until it goes quiet)."""
        events: list[LogEvent] = []
        deadline = time.monotonic() + max_seconds
        try:
            with self.pod_log_stream(pod_id, tail=lines, read_timeout=idle_seconds) as stream:
                for event in stream:
                    events.append(event)
                    if time.monotonic() > deadline:
                        break
        except (httpx.TimeoutException, httpx.TransportError):
            pass
        return events[-lines:]

    # -- network volumes -------------------------------------------------------------------

    def list_volumes(self) -> list[Volume]:
        """Every network volume of the account."""
        data = self._json("GET", "network-volumes", "listNetworkVolumes")
        return [Volume.from_api(v) for v in data.get("networkVolumes", [])]

    def get_volume(self, volume_id: str) -> Volume:
        """One network volume."""
        return Volume.from_api(
            self._json("GET", f"network-volumes/{volume_id}", "getNetworkVolume")
        )

    def create_volume(self, request: dict[str, Any]) -> Volume:
        """Create a network volume from a ``CreateNetworkVolumeRequest`` body (billed by GB).

        Callers create a volume only where none of that name exists in that data center, so
        after a lost answer the volume is looked up by (name, data center) before a retry.
        """

        def find() -> Volume | None:
            return next(
                (
                    v
                    for v in self.list_volumes()
                    if v.name == request["name"] and v.data_center == request["dataCenter"]
                ),
                None,
            )

        return self._create(
            lambda: Volume.from_api(
                self._json(
                    "POST",
                    "network-volumes",
                    "createNetworkVolume",
                    body=request,
                    idempotent=False,
                )
            ),
            find,
            "createNetworkVolume",
        )

    def grow_volume(self, volume_id: str, size_gb: int) -> Volume:
        """Grow a network volume to ``size_gb`` (volumes never shrink)."""
        return Volume.from_api(
            self._json(
                "PATCH",
                f"network-volumes/{volume_id}",
                "updateNetworkVolume",
                body={"size": size_gb},
            )
        )

    def delete_volume(self, volume_id: str) -> None:
        """Delete a network volume and everything on it."""
        self._json("DELETE", f"network-volumes/{volume_id}", "deleteNetworkVolume")

    # -- catalog ---------------------------------------------------------------------------

    def list_gpu_types(
        self,
        *,
        availability: bool = True,
        cloud: str | None = None,
        min_cuda: str | None = None,
        countries: list[str] | None = None,
    ) -> list[GpuType]:
        """GPU types with prices, and pod stock per data center when ``availability``."""
        params: dict[str, Any] = {}
        if availability:
            params = _availability(cloud, min_cuda, countries)
        data = self._json("GET", "catalog/gpus", "listGpuTypes", params=params)
        return [GpuType.from_api(g) for g in data.get("gpus", [])]

    def get_gpu_type(
        self,
        gpu_id: str,
        *,
        availability: bool = True,
        cloud: str | None = None,
        min_cuda: str | None = None,
        countries: list[str] | None = None,
    ) -> GpuType:
        """One GPU type (``gpu_id`` as RunPod names it, e.g. ``NVIDIA L4``).

        With ``availability``, stock is scoped to hosts at or above ``min_cuda`` and to data
        centers in ``countries`` (ISO codes): the ``dataCenters`` it lists are exactly where a
        pod with the same constraints can be placed.
        """
        params = _availability(cloud, min_cuda, countries) if availability else {}
        return GpuType.from_api(
            self._json("GET", f"catalog/gpus/{gpu_id}", "getGpuType", params=params)
        )

    def list_data_centers(
        self, *, gpus: bool = True, cpus: bool = False, regions: list[str] | None = None
    ) -> list[DataCenter]:
        """Data centers (only those in ``regions`` if given), with GPU/CPU availability."""
        include = [n for n, on in (("GPU_AVAILABILITY", gpus), ("CPU_AVAILABILITY", cpus)) if on]
        data = self._json(
            "GET",
            "catalog/datacenters",
            "listDataCenters",
            params={"include": _csv(include), "regions": _csv(regions)},
        )
        return [DataCenter.from_api(d) for d in data.get("dataCenters", [])]

    def list_cpu_types(self) -> list[dict[str, Any]]:
        """CPU flavors (``cpu3c``, ``cpu5c``...) with prices."""
        return list(self._json("GET", "catalog/cpus", "listCpuTypes").get("cpus", []))


def _availability(
    cloud: str | None, min_cuda: str | None, countries: list[str] | None
) -> dict[str, Any]:
    return {
        "include": "AVAILABILITY",
        "product": "POD",
        "cloud": cloud,
        "minCudaVersion": min_cuda,
        "countryCodes": _csv(countries),
    }


def _problem(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def parse_sse(lines: Iterator[str]) -> Iterator[LogEvent]:
    """Log events from SSE lines (``id:`` and a JSON ``data:`` per event)."""
    event_id = ""
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r")
        if not line:
            if data:
                yield _event(event_id, "\n".join(data))
            event_id, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "data":
            data.append(value)
    if data:
        yield _event(event_id, "\n".join(data))


def _event(event_id: str, payload: str) -> LogEvent:
    try:
        body = json.loads(payload)
    except json.JSONDecodeError:
        return LogEvent(line=payload, id=event_id)
    if not isinstance(body, dict):
        return LogEvent(line=str(body), id=event_id)
    return LogEvent(
        line=str(body.get("line", "")),
        source=str(body.get("source", "container")),
        ts=str(body.get("ts", "")),
        id=event_id or str(body.get("ts", "")),
    )
