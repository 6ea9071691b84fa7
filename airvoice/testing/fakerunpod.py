"""A fake RunPod REST v2 on 127.0.0.1, stateful, with faults, that checks the contract.

Every request it receives and every response it returns is validated against RunPod's
OpenAPI document (``openapi-v2.json``, kept in the public ``runpod/docs`` repository as
``api-reference-v2/openapi.json``); mismatches are collected in ``violations`` (tests assert it
stays empty). It answers as the document's examples do:

- A pod's ``ports`` lists ``"8000/http"`` but ``runtime.ports`` holds only the TCP mappings
  (``{"private": 22, "public": 34446, "type": "tcp", "ip": ...}`` in every Pod example): HTTP
  ports are reached through the proxy (``https://{pod}-{port}.proxy.runpod.net``) and never
  listed there. ``runtime`` is ``{}`` in the create answer and null until RUNNING.
- ``gpu.minCudaVersion`` / ``allowedCudaVersions`` (``CreateGpuConfig``) choose the host; the
  pod reports the host's ``cudaVersion``. The catalog's ``minCudaVersion``, ``cudaVersions``,
  ``countryCodes`` and ``cloud`` filters scope ``dataCenters`` and ``cudaVersions``; the data
  center list filters by ``regions``.
- A create answers 400 with a human ``detail`` for no capacity (no machine code for it), and
  network volumes are Secure Cloud only.

What the container does is scripted from RunPod's system log as users have posted it: a
private image without registry credentials loops on ``error pulling image: ... pull access
denied`` / ``error creating container: ... No such image`` (runpod/runpod-python#165,
dstackai/dstack#2507), and a host whose driver is older than the image's CUDA fails with
``unsatisfied condition: cuda>=X`` (docs.runpod.io/pods/manage-pods, "CUDA Version
Compatibility"); both keep the pod in STARTING while the container is retried. Secrets in
``env`` (``{{ RUNPOD_SECRET_name }}``, docs.runpod.io/pods/templates/secrets) are resolved
when the container starts, never shown by the API.

Faults: no capacity in given data centers, 429 with Retry-After, a 500 once, an answer lost
(502/504) after a create that happened, a pod that goes to ERROR, a slow image pull, the
prefetch failing for a given reason. Needs ``openapi-core`` (the ``dev`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SPEC_ENV = "AIRVOICE_RUNPOD_OPENAPI"
SPEC_HOST = "https://api.runpod.io"
NO_CAPACITY = (
    "There are no longer any instances available with the requested specifications. "
    "Please refresh and try again."
)


#: Where RunPod publishes the document: the public repository ``runpod/docs``, file
#: ``api-reference-v2/openapi.json`` (the version these fakes were checked against: commit
#: a900806e, 2026-08-20). It is RunPod's, so airvoice does not ship a copy: point
#: ``$AIRVOICE_RUNPOD_OPENAPI`` at a downloaded copy (the project's own tests set it).
SPEC_SOURCE = "runpod/docs: api-reference-v2/openapi.json"


def openapi_spec_path() -> Path:
    """RunPod's OpenAPI v2 document, from ``$AIRVOICE_RUNPOD_OPENAPI``, or a clear error."""
    given = os.environ.get(SPEC_ENV, "").strip()
    if not given:
        raise FileNotFoundError(
            f"the fake RunPod validates against RunPod's OpenAPI v2 document ({SPEC_SOURCE}); "
            f"download it and set {SPEC_ENV} to its path"
        )
    return Path(given)


# -- OpenAPI validation ----------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    path: str
    parameters: Any
    body: bytes | None
    content_type: str
    host_url: str = SPEC_HOST


@dataclass
class _Response:
    status_code: int
    data: bytes | None
    content_type: str
    headers: Any


@functools.lru_cache(maxsize=2)
def _openapi(path: str) -> Any:
    from openapi_core import Config, OpenAPI

    def problem_json(value: bytes | str, **_: Any) -> Any:
        return json.loads(value)

    def text(value: bytes | str, **_: Any) -> str:
        return value.decode() if isinstance(value, bytes) else value

    config = Config(
        extra_media_type_deserializers={
            "application/problem+json": problem_json,
            "text/event-stream": text,
        }
    )
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"RunPod's OpenAPI document is not at {path}: set {SPEC_ENV} to a copy of {SPEC_SOURCE}"
        )
    return OpenAPI.from_file_path(path, config=config)


class OpenApiValidator:
    """Validates requests and responses against RunPod's OpenAPI document."""

    def __init__(self, spec_path: Path | None = None) -> None:
        self.spec_path = spec_path or openapi_spec_path()
        self.spec = _openapi(str(self.spec_path))

    @staticmethod
    def _request(
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> _Request:
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        return _Request(
            method=method.lower(),
            path=path,
            parameters=RequestParameters(
                query=ImmutableMultiDict(query),
                header=Headers(headers),
                cookie=ImmutableMultiDict(),
            ),
            body=body or None,
            content_type=content_type,
        )

    def request_errors(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]] | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> list[str]:
        """What is wrong with a request (``path`` from ``/v2/...``); empty when it is valid."""
        request = self._request(method, path, query or [], headers or [], body)
        try:
            self.spec.validate_request(request)
        except Exception as exc:
            return [_describe(f"request {method.upper()} {path}", exc)]
        return []

    def response_errors(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: list[tuple[str, str]],
        body: bytes | None,
        status: int,
        content_type: str,
        response_body: bytes | None,
        response_headers: dict[str, str],
    ) -> list[str]:
        """What is wrong with a response to that request; empty when it is valid."""
        from werkzeug.datastructures import Headers

        request = self._request(method, path, query, headers, body)
        response = _Response(status, response_body, content_type, Headers(response_headers))
        try:
            self.spec.validate_response(request, response)
        except Exception as exc:
            return [_describe(f"response {status} to {method.upper()} {path}", exc)]
        return []

    def check_planned(self, method: str, url: str, body: dict[str, Any] | None) -> list[str]:
        """Validate a request given as a full URL (e.g. from ``--dry-run``), as if sent."""
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(url)
        raw = json.dumps(body).encode() if body is not None else None
        headers = [("Authorization", "Bearer dry-run")]
        if raw is not None:
            headers.append(("Content-Type", "application/json"))
        return self.request_errors(method, parts.path, parse_qsl(parts.query), headers, raw)


def _describe(what: str, exc: Exception) -> str:
    detail = str(exc)
    cause = exc.__cause__
    errors = getattr(cause, "schema_errors", None) or getattr(exc, "schema_errors", None)
    if errors:
        detail += " | " + "; ".join(getattr(e, "message", str(e)) for e in errors)
    return f"{what}: {type(exc).__name__}: {detail}"


# -- state -----------------------------------------------------------------------------------


@dataclass
class Faults:
    """What goes wrong. One-shot faults are consumed when they fire."""

    no_gpu_capacity_in: set[str] = field(default_factory=set)
    no_cpu_capacity_in: set[str] = field(default_factory=set)
    rate_limit_once: dict[str, int] = field(default_factory=dict)
    """operationId -> Retry-After seconds, for the next call of that operation."""
    server_error_once: set[str] = field(default_factory=set)
    """operationIds whose next call answers 500."""
    lost_answer_once: dict[str, int] = field(default_factory=dict)
    """operationId -> 502 or 504: the next call of it is carried out, then its answer is lost
    (a gateway error), as when RunPod's edge times out on a create that went through."""
    gpu_pod_error: bool = False
    """GPU pods go to ERROR instead of RUNNING."""
    slow_image_pull_seconds: float | None = None
    """GPU pods stay STARTING this long."""
    prefetch_fails: str | None = None
    """Why the prefetch fails: ``not-writable`` (the volume's root-owned mount), ``bad-token``
    (the hub rejects HF_TOKEN), ``not-granted`` (the gated licence not accepted)."""
    private_images: set[str] = field(default_factory=set)
    """Images that pull only with a registry credential the fake knows (``registries``)."""


@dataclass
class FakeTiming:
    """The fake's clock: seconds in each state, and between log lines."""

    provision_seconds: float = 0.2
    image_pull_seconds: float = 0.3
    log_step_seconds: float = 0.1


@dataclass
class _Pod:
    data: dict[str, Any]
    kind: str
    started: float
    running_at: float
    fate: str
    logs: list[tuple[float, str, str]] = field(default_factory=list)
    """(seconds after ``started``, source, line)."""
    forced: str | None = None
    wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    ip: str = "195.26.233.3"
    stuck: bool = False
    """The container never starts (image pull or CUDA error): the pod stays STARTING."""


_DATA_CENTERS: list[dict[str, Any]] = [
    # ``hosts``: the CUDA versions the machines with that GPU report there (the catalog's
    # ``cudaVersions``); ``country`` scopes ``countryCodes`` (not a field of DataCenter).
    {
        "id": "CA-MTL-1",
        "name": "Canada Montreal 1",
        "region": "NORTH_AMERICA",
        "networkVolumeTypes": ["STANDARD"],
        "compliance": [],
        "globalNetwork": False,
        "country": "CA",
        "gpus": {"NVIDIA L4": "HIGH"},
        "hosts": {"NVIDIA L4": ["12.2"]},
        "cpus": {"cpu3c": "HIGH"},
    },
    {
        "id": "EU-RO-1",
        "name": "Europe Romania 1",
        "region": "EUROPE",
        "networkVolumeTypes": ["STANDARD"],
        "compliance": ["GDPR"],
        "globalNetwork": False,
        "country": "RO",
        "gpus": {
            "NVIDIA L4": "HIGH",
            "NVIDIA RTX A5000": "LOW",
            "NVIDIA RTX 5000 Ada Generation": "MEDIUM",
            "NVIDIA RTX 2000 Ada Generation": "HIGH",
        },
        "hosts": {
            "NVIDIA L4": ["12.4", "12.8", "13.0"],
            "NVIDIA RTX A5000": ["12.8", "13.0"],
            "NVIDIA RTX 5000 Ada Generation": ["13.0"],
            "NVIDIA RTX 2000 Ada Generation": ["13.0"],
        },
        "cpus": {"cpu3c": "HIGH", "cpu5c": "MEDIUM"},
    },
    {
        "id": "US-KS-2",
        "name": "US Kansas 2",
        "region": "NORTH_AMERICA",
        "networkVolumeTypes": ["STANDARD", "HIGH_PERFORMANCE"],
        "compliance": ["SOC_2_TYPE_2"],
        "globalNetwork": True,
        "country": "US",
        "gpus": {
            "NVIDIA L4": "MEDIUM",
            "NVIDIA GeForce RTX 4090": "HIGH",
            "NVIDIA H200 NVL": "LOW",
        },
        "hosts": {
            "NVIDIA L4": ["12.8", "13.0"],
            "NVIDIA GeForce RTX 4090": ["12.8", "13.0"],
            "NVIDIA H200 NVL": ["13.0"],
        },
        "cpus": {"cpu3c": "LOW"},
    },
    {
        "id": "US-TX-3",
        "name": "US Texas 3",
        "region": "NORTH_AMERICA",
        "networkVolumeTypes": [],
        "compliance": [],
        "globalNetwork": False,
        "country": "US",
        "gpus": {"NVIDIA L4": "HIGH", "NVIDIA H100 80GB HBM3": "LOW"},
        "hosts": {"NVIDIA L4": ["12.8", "13.0"], "NVIDIA H100 80GB HBM3": ["12.8", "13.0"]},
        "cpus": {},
    },
]
_INTERNAL = ("gpus", "cpus", "hosts", "country")
_GPUS: dict[str, dict[str, Any]] = {
    "NVIDIA L4": {"name": "L4", "pool": "ADA_24", "memory": 24, "price": (0.43, 0.29)},
    "NVIDIA RTX A5000": {
        "name": "RTX A5000",
        "pool": "AMPERE_24",
        "memory": 24,
        "price": (0.27, 0.16),
    },
    "NVIDIA GeForce RTX 4090": {
        "name": "RTX 4090",
        "pool": "ADA_24",
        "memory": 24,
        "price": (0.69, 0.34),
    },
    "NVIDIA H100 80GB HBM3": {
        "name": "H100 SXM",
        "pool": "HOPPER_141",
        "memory": 80,
        "price": (2.99, 2.69),
    },
    "NVIDIA H200 NVL": {"name": "H200 NVL", "pool": None, "memory": 143, "price": (3.39, 3.19)},
    "NVIDIA RTX 5000 Ada Generation": {
        "name": "RTX 5000 Ada",
        "pool": "ADA_32_PRO",
        "memory": 32,
        "price": (0.77, 0.57),
    },
    "NVIDIA RTX 2000 Ada Generation": {
        "name": "RTX 2000 Ada",
        "pool": "ADA_16",
        "memory": 16,
        "price": (0.24, 0.17),
    },
}
_CPUS = {"cpu3c": ("Compute-Optimized", "Gen 3", 2.0), "cpu5c": ("Compute-Optimized", "Gen 5", 2.0)}
_ACTIONS = {
    "PROVISIONING": ["stop", "terminate"],
    "STARTING": ["stop", "terminate"],
    "RUNNING": ["stop", "restart", "terminate"],
    "EXITED": ["start", "terminate"],
    "ERROR": ["start", "terminate"],
}


def _cuda(version: str) -> tuple[int, ...]:
    """``"12.11"`` -> ``(12, 11)``: compared numerically, as the document says."""
    return tuple(int(part) for part in version.split("."))


def _csv_param(query: dict, name: str) -> list[str]:
    return [v for v in query.get(name, "").split(",") if v]


def _hosts(dc: dict[str, Any], gpu_id: str, query_or_body: dict[str, Any]) -> list[str]:
    """The CUDA versions of ``gpu_id`` hosts in ``dc`` that pass the CUDA constraints."""
    versions = list(dc["hosts"].get(gpu_id, []))
    floor = query_or_body.get("minCudaVersion")
    exact = query_or_body.get("allowedCudaVersions") or query_or_body.get("cudaVersions")
    if isinstance(exact, str):
        exact = [v for v in exact.split(",") if v]
    if floor:
        versions = [v for v in versions if _cuda(v) >= _cuda(floor)]
    if exact:
        versions = [v for v in versions if v in exact]
    return sorted(versions, key=_cuda)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _problem(status: int, title: str, detail: str, **extra: Any) -> tuple[int, Any, str]:
    return status, {"title": title, "status": status, "detail": detail, **extra}, "problem"


class FakeRunPod:
    """The fake API. Use as a context manager: ``with FakeRunPod() as fake: fake.base_url``."""

    def __init__(
        self,
        api_key: str = "fake-runpod-key",
        *,
        timing: FakeTiming | None = None,
        faults: Faults | None = None,
        spec_path: Path | None = None,
        image_cuda: str | None = None,
    ) -> None:
        self.keys = {api_key}
        self.image_cuda = image_cuda
        """The CUDA version the image needs from the host driver (its torch build), if any."""
        self.secrets: dict[str, str] = {}
        """RunPod secrets of the account, by name (made in the console)."""
        self.registries: set[str] = set()
        """Ids of the account's container registry credentials (``POST /v2/registries``)."""
        self.timing = timing or FakeTiming()
        self.faults = faults or Faults()
        self.validator = OpenApiValidator(spec_path)
        self.violations: list[str] = []
        self.calls: list[tuple[str, str, int]] = []
        """(operationId, path, status) of every call, in order."""
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        """(operationId, query, JSON body) of every call, in order."""
        self.pods: dict[str, _Pod] = {}
        self.deleted: list[dict[str, Any]] = []
        self.deleted_at: dict[str, float] = {}
        """Pod id -> when it was deleted (``time.monotonic``)."""
        self.volumes: dict[str, dict[str, Any]] = {}
        self.volume_contents: dict[str, set[str]] = {}
        self.seen_authorization: list[str] = []
        self._lock = threading.RLock()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """What the client's base URL should be."""
        return f"http://127.0.0.1:{self.port}/v2"

    def __enter__(self) -> FakeRunPod:
        import uvicorn

        config = uvicorn.Config(
            self.app(), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-runpod", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake RunPod did not start")
            time.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)

    # -- what tests look at ----------------------------------------------------------------

    def live_pods(self) -> list[dict[str, Any]]:
        """Pods that exist (any status): after a failed deploy this must be empty."""
        with self._lock:
            return [self._view(p) for p in self.pods.values()]

    def add_pod(self, name: str = "existing", env: dict | None = None, cpu: bool = False) -> str:
        """A pod created directly (not through the API), already RUNNING."""
        now = time.monotonic()
        body: dict[str, Any] = {
            "name": name,
            "image": "ghcr.io/airvoice/airvoice:test",
            "ports": [] if cpu else ["8000/http"],
            "env": dict(env or {}),
        }
        if cpu:
            body["cpu"] = {"id": "cpu3c", "vcpuCount": 4}
        else:
            body["gpu"] = {"id": "NVIDIA L4", "count": 1}
        with self._lock:
            # On a host whose driver runs the image, as a pod that is already RUNNING must be.
            pod = self._new_pod(body, "EU-RO-1", now - 10, self.image_cuda or "12.8")
            return str(pod.data["id"])

    def bodies(self, operation: str) -> list[Any]:
        """The JSON bodies sent to ``operation``, in order."""
        return [body for op, _, body in self.requests if op == operation]

    def operations(self) -> list[str]:
        """The operationIds called, in order."""
        return [op for op, _, _ in self.calls]

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> Any:
        """The Starlette app (one route: the fake dispatches by itself)."""
        from starlette.applications import Starlette
        from starlette.routing import Route

        methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])

    async def _handle(self, request: Any) -> Any:
        from starlette.responses import Response, StreamingResponse

        body = await request.body()
        path = request.url.path
        method = request.method
        query = list(request.query_params.multi_items())
        headers = list(request.headers.items())
        self.seen_authorization.append(request.headers.get("authorization", ""))
        operation, params = _route(method, path)
        errors = self.validator.request_errors(method, path, query, headers, body)
        with self._lock:
            if operation is None:
                status, payload, kind = _problem(404, "Not Found", f"no route {method} {path}")
                self.violations.append(f"request {method} {path}: not in the OpenAPI document")
            elif errors:
                self.violations.extend(errors)
                if any("Security" in e for e in errors):
                    status, payload, kind = _problem(401, "Unauthorized", "missing bearer token")
                else:
                    status, payload, kind = _problem(
                        422, "Unprocessable Entity", "Request validation failed.", errors=errors
                    )
            else:
                status, payload, kind = self._dispatch(
                    operation, params, request, body, dict(request.query_params)
                )
            self.calls.append((operation or "?", path, status))
            try:
                sent = json.loads(body) if body else None
            except ValueError:
                sent = None
            self.requests.append((operation or "?", dict(request.query_params), sent))
        response_headers: dict[str, str] = {}
        if status == 429:
            response_headers["Retry-After"] = str(payload.pop("_retry_after"))
        if kind == "sse":
            content_type = "text/event-stream"
            response_headers.update(
                {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}
            )
            check = functools.partial(
                self._check_response, method, path, query, headers, body, status, content_type
            )
            return StreamingResponse(
                self._checked_stream(payload, check, response_headers),
                status_code=status,
                media_type=content_type,
                headers=response_headers,
            )
        if payload is None:
            data, content_type = b"", ""
        else:
            data = json.dumps(payload).encode()
            content_type = "application/problem+json" if kind == "problem" else "application/json"
        self._check_response(
            method, path, query, headers, body, status, content_type, data, response_headers
        )
        return Response(
            data or None,
            status_code=status,
            media_type=content_type or None,
            headers=response_headers,
        )

    async def _checked_stream(
        self, events: AsyncIterator[bytes], check: Any, headers: dict[str, str]
    ) -> AsyncIterator[bytes]:
        """Pass the SSE bytes through; validate the whole stream (and each event) at its end."""
        sent = bytearray()
        try:
            async for chunk in events:
                sent.extend(chunk)
                yield chunk
        finally:
            # The document describes the body as a string; an empty stream is one comment.
            check(bytes(sent) or b":\n\n", headers)
            with self._lock:
                self.violations.extend(_sse_errors(bytes(sent)))

    def _check_response(self, *args: Any) -> None:
        method, path, query, headers, body, status, content_type, data, response_headers = args
        if _route(method, path)[0] is None:
            return  # already reported: the path is not in the document
        errors = self.validator.response_errors(
            method, path, query, headers, body, status, content_type, data, response_headers
        )
        with self._lock:
            self.violations.extend(errors)

    def _dispatch(
        self, operation: str, params: dict[str, str], request: Any, body: bytes, query: dict
    ) -> tuple[int, Any, str]:
        auth = request.headers.get("authorization", "")
        if not any(auth == f"Bearer {key}" for key in self.keys):
            return _problem(401, "Unauthorized", "invalid api key")
        if operation in self.faults.rate_limit_once:
            seconds = self.faults.rate_limit_once.pop(operation)
            status, payload, kind = _problem(
                429, "Too Many Requests", "rate limit exceeded for the minute window"
            )
            payload["_retry_after"] = seconds
            return status, payload, kind
        if operation in self.faults.server_error_once:
            self.faults.server_error_once.discard(operation)
            return _problem(500, "Internal Server Error", "upstream failure")
        data = json.loads(body) if body else None
        handler = getattr(self, f"_op_{operation}")
        result = handler(params, data, query, request)
        if operation in self.faults.lost_answer_once and result[0] < 300:
            status = self.faults.lost_answer_once.pop(operation)
            title = {502: "Bad Gateway", 504: "Gateway Timeout"}.get(status, "Server Error")
            return _problem(status, title, "upstream did not answer in time")
        return result

    # -- pods ------------------------------------------------------------------------------

    def _status(self, pod: _Pod) -> str:
        if pod.forced:
            return pod.forced
        elapsed = time.monotonic() - pod.started
        if elapsed < self.timing.provision_seconds:
            return "PROVISIONING"
        if elapsed < pod.running_at or pod.stuck:
            return "STARTING"
        if pod.fate == "error":
            pod.forced = "ERROR"
            return "ERROR"
        return "RUNNING"

    def _view(self, pod: _Pod) -> dict[str, Any]:
        data = dict(pod.data)
        status = self._status(pod)
        data["status"] = status
        data["actions"] = _ACTIONS.get(status, [])
        running = status == "RUNNING"
        uptime = max(0, int(time.monotonic() - pod.started - pod.running_at))
        # Only TCP ports are mapped (a public port on the host's IP); HTTP ports go through the
        # proxy and are not listed, as in every Pod example of the document.
        ports = [
            {"private": int(p.split("/")[0]), "public": 30000 + i, "type": "tcp", "ip": pod.ip}
            for i, p in enumerate(data["ports"])
            if p.endswith("/tcp")
        ]
        data["runtime"] = {"uptime": uptime, "ports": ports} if running else None
        data["startedAt"] = _iso(pod.wall + timedelta(seconds=pod.running_at)) if running else None
        data["ssh"] = {
            "proxy": {
                "host": "ssh.runpod.io",
                "port": 22,
                "username": f"{data['id']}-64411eb2",
                "command": f"ssh {data['id']}-64411eb2@ssh.runpod.io",
            }
            if status != "PROVISIONING"
            else None,
            "direct": None,
        }
        if status in ("EXITED", "ERROR"):
            data["cost"] = 0.0
        return data

    def _new_pod(
        self, body: dict[str, Any], dc: str, started: float, cuda: str | None = "12.8"
    ) -> _Pod:
        pod_id = uuid.uuid4().hex[:14]
        is_gpu = "gpu" in body
        if is_gpu:
            gpu = _GPUS.get(body["gpu"]["id"], {"price": (1.0, 0.5)})
            secure, community = gpu["price"]
            cost = (secure if body.get("cloud", "SECURE") == "SECURE" else community) * int(
                body["gpu"].get("count", 1)
            )
        else:
            cost = 0.04 * int(body["cpu"]["vcpuCount"])
        data: dict[str, Any] = {
            "id": pod_id,
            "name": body["name"],
            "image": body.get("image", ""),
            "args": body.get("args", ""),
            "disk": body.get("disk", 20),
            "ports": list(body.get("ports", [])),
            "env": dict(body.get("env", {})),
            "registry": body.get("registry"),
            "mounts": body.get("mounts", {}),
            "cloud": body.get("cloud", "SECURE"),
            "dataCenterId": dc,
            "cudaVersion": cuda if is_gpu else None,
            "template": None,
            "cost": round(cost, 4),
            "locked": False,
            "globalNetworking": {"enabled": False},
            "createdAt": _iso(datetime.now(UTC)),
        }
        if is_gpu:
            # GET shows GpuConfig only (the CUDA constraints are create-time, CreateGpuConfig).
            data["gpu"] = {"id": body["gpu"]["id"], "count": int(body["gpu"].get("count", 1))}
        else:
            cpu = body["cpu"]
            data["cpu"] = {
                "id": cpu["id"],
                "vcpuCount": cpu["vcpuCount"],
                "memory": int(cpu["vcpuCount"] * 2),
            }
        pull = self.timing.image_pull_seconds
        if is_gpu and self.faults.slow_image_pull_seconds:
            pull = self.faults.slow_image_pull_seconds
        fate = "error" if is_gpu and self.faults.gpu_pod_error else "run"
        pod = _Pod(
            data, "gpu" if is_gpu else "cpu", started, self.timing.provision_seconds + pull, fate
        )
        self._script(pod)
        self.pods[pod_id] = pod
        return pod

    def _script(self, pod: _Pod) -> None:
        """The log lines the pod writes: RunPod's system lines, then the container's (what
        airvoice's commands print)."""
        step = self.timing.log_step_seconds
        at = pod.running_at
        logs = pod.logs
        image = pod.data["image"]
        logs.append((0.0, "system", f"create container {image}"))
        denied = image in self.faults.private_images and (
            pod.data.get("registry") not in self.registries
        )
        host_cuda = pod.data.get("cudaVersion")
        too_old = (
            pod.kind == "gpu"
            and self.image_cuda is not None
            and host_cuda is not None
            and _cuda(host_cuda) < _cuda(self.image_cuda)
        )
        if denied or too_old:
            # RunPod retries the container for as long as the pod lives; the pod stays STARTING.
            pod.stuck = True
            repository = image.rsplit(":", 1)[0]
            for i in range(40):
                t = i * 4 * step
                if denied:
                    logs.append(
                        (
                            t + step,
                            "system",
                            "error pulling image: Error response from daemon: pull access denied "
                            f"for {repository}, repository does not exist or may require "
                            "'docker login': denied: requested access to the resource is denied",
                        )
                    )
                    logs.append(
                        (
                            t + 2 * step,
                            "system",
                            "error creating container: Error response from daemon: "
                            f"No such image: {image}",
                        )
                    )
                else:
                    logs.append(
                        (
                            t + step,
                            "system",
                            "error starting container: OCI runtime create failed: "
                            "nvidia-container-cli: requirement error: unsatisfied condition: "
                            f"cuda>={self.image_cuda}, please update your driver to a newer "
                            "version, or use an earlier cuda container: unknown",
                        )
                    )
                logs.append((t + 3 * step, "system", f"create container {image}"))
            return
        logs.append((0.1 * step, "system", f"pulling image {image}"))
        if pod.fate == "error":
            logs.append((at, "system", "error starting container: exec format error"))
            return
        logs.append((at, "system", "container started"))
        env = {k: self._resolve(v) for k, v in pod.data["env"].items()}
        args = str(pod.data.get("args", ""))
        if "models prefetch" in args:
            volume = (pod.data["mounts"].get("network") or [{}])[0].get("volumeId", "")
            preset = env.get("AIRVOICE_PRESET", "?")
            contents = self.volume_contents.setdefault(volume, set())
            failure = self._prefetch_failure(preset, env.get("HF_TOKEN", ""))
            if failure:
                for i, line in enumerate(failure, start=1):
                    logs.append((at + i * step, "container", line))
                logs.append(
                    (at + (len(failure) + 1) * step, "container", "AIRVOICE_PREFETCH_FAILED")
                )
                return
            if preset in contents:
                logs.append(
                    (at + step, "container", f"{preset}: lock file verifies, nothing to fetch")
                )
            else:
                for i, pct in enumerate((0, 35, 70, 100), start=1):
                    logs.append((at + i * step, "container", f"fetching {preset}: {pct}%"))
                contents.add(preset)
            logs.append((at + 6 * step, "container", "AIRVOICE_PREFETCH_OK"))
            return
        if "--download-missing" in args:
            preset = env.get("AIRVOICE_PRESET", "?")
            failure = self._prefetch_failure(preset, env.get("HF_TOKEN", ""))
            if failure:
                logs.extend((at + i * step, "container", line) for i, line in enumerate(failure))
                pod.stuck = True  # the server never starts
                return
            logs.append((at + step, "container", f"fetching missing weights: {preset}"))
        logs.append((at + step, "container", "loading the models..."))
        logs.append((at + 2 * step, "container", "airvoice is listening on ws://127.0.0.1:8000/ws"))

    def _resolve(self, value: str) -> str:
        """``{{ RUNPOD_SECRET_name }}`` -> the secret's value, as RunPod does at boot."""
        match = re.fullmatch(r"\{\{\s*RUNPOD_SECRET_([A-Za-z0-9_-]+)\s*\}\}", value.strip())
        return self.secrets.get(match.group(1), "") if match else value

    def _prefetch_failure(self, preset: str, token: str) -> list[str]:
        """What ``airvoice models prefetch`` prints when it fails (airvoice/models/prefetch.py
        ``Prefetcher.explain``), for the fault set, or for a gated preset without a token."""
        llama = "meta-llama/Llama-3.1-8B-Instruct"
        named = "(named by fixie-ai/ultravox-v0_5-llama-3_1-8b)"
        kind = self.faults.prefetch_fails
        if kind is None and "8b" in preset and not token:
            kind = "no-token"
        if kind == "not-writable":
            return [
                "ERROR airvoice.cli.models: prefetch failed",
                "Traceback (most recent call last):",
                "PermissionError: [Errno 13] Permission denied: '/workspace/hf'",
            ]
        if kind == "no-token":
            return [
                "Not fetched:",
                f"* {llama} {named} is gated and no Hugging Face token was given. Log in at "
                f"https://huggingface.co/{llama}, accept the Llama 3.1 Community License, "
                "create a read token at https://huggingface.co/settings/tokens, then rerun "
                "with HF_TOKEN set.",
            ]
        if kind == "bad-token":
            return [
                "Not fetched:",
                "* the hub rejected the Hugging Face token while fetching "
                "fixie-ai/ultravox-v0_5-llama-3_1-8b (invalid or expired). Create a read token "
                "at https://huggingface.co/settings/tokens and set HF_TOKEN (or pass --token).",
            ]
        if kind == "not-granted":
            return [
                "Not fetched:",
                f"* {llama} {named} is gated and this token's account has not been granted "
                f"access. Open https://huggingface.co/{llama}, accept the Llama 3.1 Community "
                "License (requests are reviewed, usually within hours), then rerun this "
                "command with the same token.",
            ]
        return []

    def _find(self, pod_id: str) -> _Pod | None:
        return self.pods.get(pod_id)

    def _op_listPods(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        return 200, {"pods": [self._view(p) for p in self.pods.values()]}, "json"

    def _op_getPod(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        pod = self._find(params["id"])
        if pod is None:
            return _problem(404, "Not Found", "pod not found")
        return 200, self._view(pod), "json"

    def _op_createPod(self, params: dict, body: Any, query: dict, request: Any) -> tuple:
        if ("gpu" in body) == ("cpu" in body):
            return _problem(400, "Bad Request", "exactly one of gpu or cpu must be set")
        dcs = body.get("dataCenterIds") or [d["id"] for d in _DATA_CENTERS]
        dc = dcs[0]
        known = {d["id"]: d for d in _DATA_CENTERS}
        if dc not in known:
            return _problem(400, "Bad Request", f"unknown data center {dc}")
        for mount in (body.get("mounts") or {}).get("network") or []:
            volume = self.volumes.get(mount["volumeId"])
            if volume is None:
                return _problem(400, "Bad Request", f"network volume {mount['volumeId']} not found")
            if volume["dataCenter"] != dc:
                return _problem(400, "Bad Request", "the network volume is in another data center")
            if body.get("cloud") == "COMMUNITY":
                return _problem(
                    400, "Bad Request", "network volumes are only available on Secure Cloud"
                )
        cuda = None
        if "gpu" in body:
            gpu = body["gpu"]
            if gpu.get("allowedCudaVersions") and gpu.get("minCudaVersion"):
                return _problem(
                    400,
                    "Bad Request",
                    "allowedCudaVersions and minCudaVersion are mutually exclusive",
                )
            stock = known[dc]["gpus"].get(gpu["id"], "NONE")
            # The scheduler places on a host that meets the CUDA constraint; without one, on
            # whichever is free (here: the oldest driver, the case that bites).
            hosts = _hosts(known[dc], gpu["id"], gpu)
            if dc in self.faults.no_gpu_capacity_in or stock == "NONE" or not hosts:
                return _problem(400, "Bad Request", NO_CAPACITY)
            cuda = hosts[0]
        else:
            stock = known[dc]["cpus"].get(body["cpu"]["id"], "NONE")
            if dc in self.faults.no_cpu_capacity_in or stock == "NONE":
                return _problem(400, "Bad Request", NO_CAPACITY)
        pod = self._new_pod(body, dc, time.monotonic(), cuda)
        view = self._view(pod)
        view["runtime"] = {}  # as the createPod example answers
        return 201, view, "json"

    def _remove(self, pod_id: str) -> None:
        pod = self.pods.pop(pod_id)
        self.deleted.append(pod.data)
        self.deleted_at[pod_id] = time.monotonic()

    def _op_deletePod(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        if params["id"] not in self.pods:
            return _problem(404, "Not Found", "pod not found")
        self._remove(params["id"])
        return 204, None, "empty"

    def _op_podAction(self, params: dict, body: Any, query: dict, request: Any) -> tuple:
        pod = self._find(params["id"])
        if pod is None:
            return _problem(404, "Not Found", "pod not found")
        action = body["action"]
        status = self._status(pod)
        if action not in _ACTIONS.get(status, []):
            return _problem(409, "Conflict", f"cannot {action} a pod that is {status}")
        if action == "terminate":
            self._remove(pod.data["id"])
            return 204, None, "empty"
        if action == "stop":
            pod.forced = "EXITED"
            pod.logs.append((time.monotonic() - pod.started, "system", "stopped"))
        elif action in ("start", "restart"):
            pod.forced = None
            pod.fate = "run"
            pod.started = time.monotonic()
            pod.wall = datetime.now(UTC)
            pod.logs = []
            self._script(pod)
        return 200, self._view(pod), "json"

    def _visible(self, pod: _Pod) -> list[dict[str, str]]:
        elapsed = time.monotonic() - pod.started
        return [
            {"ts": _iso(pod.wall + timedelta(seconds=at)), "source": source, "line": line}
            for at, source, line in pod.logs
            if at <= elapsed
        ]

    def _op_getPodLogs(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        pod = self._find(params["id"])
        if pod is None:
            return _problem(404, "Not Found", "pod not found")
        cursor = request.headers.get("last-event-id") or query.get("since")
        tail = int(query.get("tail", 100))
        source = query.get("source")
        return 200, self._stream(pod.data["id"], cursor, tail, source), "sse"

    async def _stream(
        self, pod_id: str, cursor: str | None, tail: int, source: str | None
    ) -> AsyncIterator[bytes]:
        sent: set[str] = set()
        first = True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._lock:
                pod = self.pods.get(pod_id)
                events = self._visible(pod) if pod else []
                live = pod is not None and self._status(pod) in (
                    "PROVISIONING",
                    "STARTING",
                    "RUNNING",
                )
            events = [e for e in events if source in (None, e["source"])]
            if cursor:
                events = [e for e in events if e["ts"] > cursor]
            elif first:
                sent.update(e["ts"] for e in events[: max(0, len(events) - tail)])
            first = False
            for event in events:
                if event["ts"] in sent:
                    continue
                sent.add(event["ts"])
                yield f"id: {event['ts']}\ndata: {json.dumps(event)}\n\n".encode()
            if not live:
                return
            await asyncio.sleep(0.05)

    # -- network volumes -------------------------------------------------------------------

    def _op_listNetworkVolumes(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        return 200, {"networkVolumes": list(self.volumes.values())}, "json"

    def _op_getNetworkVolume(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        volume = self.volumes.get(params["id"])
        if volume is None:
            return _problem(404, "Not Found", "network volume not found")
        return 200, volume, "json"

    def _op_createNetworkVolume(self, params: dict, body: Any, query: dict, request: Any) -> tuple:
        dc = next((d for d in _DATA_CENTERS if d["id"] == body["dataCenter"]), None)
        if dc is None or not dc["networkVolumeTypes"]:
            return _problem(
                400, "Bad Request", f"{body['dataCenter']} does not offer network volumes"
            )
        volume = {
            "id": uuid.uuid4().hex[:10],
            "name": body["name"],
            "size": body["size"],
            "dataCenter": body["dataCenter"],
            "type": body.get("type", dc["networkVolumeTypes"][0]),
        }
        self.volumes[volume["id"]] = volume
        return 201, volume, "json"

    def _op_updateNetworkVolume(self, params: dict, body: Any, query: dict, request: Any) -> tuple:
        volume = self.volumes.get(params["id"])
        if volume is None:
            return _problem(404, "Not Found", "network volume not found")
        if "size" in body and body["size"] < volume["size"]:
            return _problem(400, "Bad Request", "network volume storage cannot be reduced")
        volume.update(body)
        return 200, volume, "json"

    def _op_deleteNetworkVolume(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        if params["id"] not in self.volumes:
            return _problem(404, "Not Found", "network volume not found")
        for pod in self.pods.values():
            for mount in (pod.data["mounts"] or {}).get("network") or []:
                if mount["volumeId"] == params["id"]:
                    return _problem(400, "Bad Request", f"volume in use by pod {pod.data['id']}")
        del self.volumes[params["id"]]
        return 204, None, "empty"

    # -- catalog ---------------------------------------------------------------------------

    def _gpu_type(self, gpu_id: str, query: dict) -> dict[str, Any]:
        info = _GPUS[gpu_id]
        secure, community = info["price"]
        gpu: dict[str, Any] = {
            "id": gpu_id,
            "name": info["name"],
            "pool": info["pool"],
            "manufacturer": "NVIDIA",
            "memory": info["memory"],
            "secure": True,
            "community": True,
            "price": {"secure": secure, "community": community},
            "maxCount": {"secure": 8, "community": 4},
        }
        if query.get("include") == "AVAILABILITY":
            countries = _csv_param(query, "countryCodes")
            where, versions = [], {}
            for d in _DATA_CENTERS:
                if gpu_id not in d["gpus"] or (countries and d["country"] not in countries):
                    continue
                hosts = _hosts(d, gpu_id, query)
                if not hosts:
                    continue  # no machine there meets the CUDA filter
                level = d["gpus"][gpu_id]
                where.append({"id": d["id"], "name": d["name"], "availability": level})
                for version in hosts:
                    versions[version] = versions.get(version, False) or level != "NONE"
            ranks = {"NONE": 0, "LOW": 1, "MEDIUM": 2, "HIGH": 3}
            best = max((ranks[w["availability"]] for w in where), default=0)
            gpu["availability"] = {v: k for k, v in ranks.items()}[best]
            if where:
                gpu["dataCenters"] = where
            if versions:
                gpu["cudaVersions"] = [
                    {"version": v, "available": a}
                    for v, a in sorted(versions.items(), key=lambda item: _cuda(item[0]))
                ]
        return gpu

    @staticmethod
    def _catalog_query_error(query: dict) -> tuple | None:
        availability = query.get("include") == "AVAILABILITY"
        if availability != ("product" in query):
            return _problem(400, "Bad Request", "product is required with include=AVAILABILITY")
        scoped = ("count", "cloud", "countryCodes", "cudaVersions", "minCudaVersion")
        if not availability and any(name in query for name in scoped):
            return _problem(400, "Bad Request", "availability filters need include=AVAILABILITY")
        if "cudaVersions" in query and "minCudaVersion" in query:
            return _problem(
                400, "Bad Request", "cudaVersions and minCudaVersion are mutually exclusive"
            )
        return None

    def _op_listGpuTypes(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        error = self._catalog_query_error(query)
        if error:
            return error
        gpus = [self._gpu_type(g, query) for g in _GPUS]
        if query.get("countryCodes"):  # the list drops types with no data center there
            gpus = [g for g in gpus if g.get("dataCenters")]
        return 200, {"gpus": gpus}, "json"

    def _op_getGpuType(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        if params["id"] not in _GPUS:
            return _problem(404, "Not Found", "gpu type not found")
        error = self._catalog_query_error(query)
        if error:
            return error
        return 200, self._gpu_type(params["id"], query), "json"

    def _op_listDataCenters(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        include = set(_csv_param(query, "include"))
        regions = set(_csv_param(query, "regions"))
        result = []
        for d in _DATA_CENTERS:
            if regions and d["region"] not in regions:
                continue
            dc = {k: v for k, v in d.items() if k not in _INTERNAL}
            if "GPU_AVAILABILITY" in include and d["gpus"]:
                dc["gpuAvailability"] = [
                    {"id": g, "name": _GPUS[g]["name"], "availability": a}
                    for g, a in d["gpus"].items()
                ]
            if "CPU_AVAILABILITY" in include and d["cpus"]:
                dc["cpuAvailability"] = [
                    {"id": c, "name": _CPUS[c][0], "availability": a} for c, a in d["cpus"].items()
                ]
            result.append(dc)
        return 200, {"dataCenters": result}, "json"

    def _op_listCpuTypes(self, params: dict, data: Any, query: dict, request: Any) -> tuple:
        cpus = [
            {
                "id": cpu_id,
                "name": name,
                "group": group,
                "vcpu": {"min": 2, "max": 32},
                "ramGbPerVcpu": ram,
                "price": {"securePerVcpu": 0.04, "serverlessPerVcpu": 0.03},
            }
            for cpu_id, (name, group, ram) in _CPUS.items()
        ]
        return 200, {"cpus": cpus}, "json"


def _sse_errors(stream: bytes) -> list[str]:
    """Each event must carry an ``id`` (its ``ts``) and ``{"source", "line", "ts"}`` data."""
    errors = []
    for block in stream.decode().split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        try:
            data = json.loads(fields.get("data", ""))
        except json.JSONDecodeError:
            errors.append(f"log event without JSON data: {block!r}")
            continue
        if set(data) != {"source", "line", "ts"} or data["source"] not in ("container", "system"):
            errors.append(f"log event data of the wrong shape: {data!r}")
        elif fields.get("id") != data["ts"]:
            errors.append(f"log event id is not its ts: {block!r}")
    return errors


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", p) + "$"), op)
    for m, p, op in [
        ("GET", "/v2/pods", "listPods"),
        ("POST", "/v2/pods", "createPod"),
        ("GET", "/v2/pods/{id}", "getPod"),
        ("DELETE", "/v2/pods/{id}", "deletePod"),
        ("GET", "/v2/pods/{id}/logs", "getPodLogs"),
        ("POST", "/v2/pods/{id}/action", "podAction"),
        ("GET", "/v2/network-volumes", "listNetworkVolumes"),
        ("POST", "/v2/network-volumes", "createNetworkVolume"),
        ("GET", "/v2/network-volumes/{id}", "getNetworkVolume"),
        ("PATCH", "/v2/network-volumes/{id}", "updateNetworkVolume"),
        ("DELETE", "/v2/network-volumes/{id}", "deleteNetworkVolume"),
        ("GET", "/v2/catalog/gpus", "listGpuTypes"),
        ("GET", "/v2/catalog/gpus/{id}", "getGpuType"),
        ("GET", "/v2/catalog/datacenters", "listDataCenters"),
        ("GET", "/v2/catalog/cpus", "listCpuTypes"),
    ]
]


def _route(method: str, path: str) -> tuple[str | None, dict[str, str]]:
    from urllib.parse import unquote

    for route_method, pattern, operation in _ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return operation, {k: unquote(v) for k, v in match.groupdict().items()}
    return None, {}


@contextlib.contextmanager
def fake_runpod(**kwargs: Any) -> Iterator[FakeRunPod]:
    """``with fake_runpod(faults=...) as fake:`` — a started fake RunPod."""
    with FakeRunPod(**kwargs) as fake:
        yield fake
