"""RunPod's proxy for several pods at once, on loopback: ``http://127.0.0.1:R/{pod}-{port}``.

Each GPU pod's port 8000 is served by a real airvoice server with instant engines (one per pod,
handed out in the order pods are first reached); a dispatcher pod's port 8080 by a real
dispatcher built from that pod's environment, as ``airvoice dispatch`` in the pod would be.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import typer
from cloud_helpers import SERVER_TOKEN
from fastapi import FastAPI, Request, Response

from airvoice.cli import app as cli_app
from airvoice.cli.dispatch import dispatch_config
from airvoice.config import ServerConfig
from airvoice.dispatch.app import create_dispatch_app
from airvoice.dispatch.config import DispatchConfig
from airvoice.server.run import ServerThread, bound_port
from airvoice.testing.replicas import instant_app, instant_config


def dispatcher_config(args: str, env: dict[str, str], **overrides: Any) -> DispatchConfig:
    """The settings ``airvoice <args>`` builds in a pod with ``env``: the real command's own
    option parsing, then its settings builder (``overrides`` replace parsed values)."""
    argv = shlex.split(args)
    assert argv[0] == "dispatch", args
    command = typer.main.get_command(cli_app).commands["dispatch"]  # type: ignore[attr-defined]
    params = {**command.make_context("dispatch", argv[1:]).params, **overrides}
    return dispatch_config(**params, environ=env)


@dataclass
class Backend:
    url: str
    server: Any
    app: FastAPI | None = None


@dataclass
class ProxyRig:
    fake: Any
    stack: contextlib.ExitStack
    spare: list[Backend] = field(default_factory=list)
    backends: dict[str, Backend] = field(default_factory=dict)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    """(time.monotonic, pod id, "METHOD /path") of every request through the proxy."""
    template: str = ""

    def backend(self, pod: str, port: str) -> Backend:
        key = f"{pod}-{port}"
        if key not in self.backends:
            if port == "8080":
                data = self.fake.pods[pod].data
                config = dispatcher_config(data["args"], data["env"], poll_interval=0.2)
                self.backends[key] = self._serve(create_dispatch_app(config))
            else:
                self.backends[key] = self.spare.pop(0)
        return self.backends[key]

    def _serve(self, app: FastAPI, config: ServerConfig | None = None) -> Backend:
        config = config or ServerConfig(host="127.0.0.1", port=0, log_level="warning")
        server = self.stack.enter_context(ServerThread(app, config))
        return Backend(f"http://127.0.0.1:{bound_port(server)}", server, app)

    def replica_state(self, pod: str) -> Any:
        return self.backends[f"{pod}-8000"].app.state.airvoice  # type: ignore[union-attr]


def proxy_app(rig: ProxyRig) -> FastAPI:
    app = FastAPI()
    http = httpx.AsyncClient(timeout=30)

    @app.api_route("/{target}/{path:path}", methods=["GET", "POST", "PUT", "OPTIONS"])
    async def forward(target: str, path: str, request: Request) -> Response:
        pod, _, port = target.rpartition("-")
        if pod not in rig.fake.pods:
            return Response("no such pod", status_code=502)  # as RunPod's proxy: not running
        rig.events.append((time.monotonic(), pod, f"{request.method} /{path}"))
        import asyncio

        backend = await asyncio.to_thread(rig.backend, pod, port)
        upstream = await http.request(
            request.method,
            f"{backend.url}/{path}",
            params=request.query_params,
            content=await request.body(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        skip = {"content-length", "transfer-encoding", "connection"}
        headers = {k: v for k, v in upstream.headers.items() if k.lower() not in skip}
        return Response(upstream.content, upstream.status_code, headers=headers)

    return app


@contextlib.contextmanager
def replica_rig(fake: Any, replicas: int) -> Iterator[ProxyRig]:
    """``replicas`` instant servers ready to stand in for pods, behind the proxy."""
    with contextlib.ExitStack() as stack:
        rig = ProxyRig(fake, stack)
        for i in range(replicas):
            config = instant_config(f"pod{i}", 2, token=SERVER_TOKEN)
            rig.spare.append(rig._serve(instant_app(config), config))
        proxy = rig._serve(proxy_app(rig))
        rig.template = proxy.url + "/{pod}-{port}"
        yield rig
