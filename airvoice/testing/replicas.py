"""Several airvoice servers with instant engines, and a dispatcher, on loopback (tests, bench).

In-process helpers serve in the caller's event loop; ``spawn_replica`` runs a replica in a
process of its own (``python -m airvoice.testing.replicas``) so that a test can kill it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from airvoice.config import ServerConfig
from airvoice.dispatch.config import DispatchConfig

TOKEN = "replica-test-token-0123456789"
SECRET = "dispatch-test-secret-0123456789abcdef"


def instant_config(replica_id: str, max_sessions: int = 2, **overrides: Any) -> ServerConfig:
    """A replica's settings: loopback, any port, the shared token and secret, fast turns."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "token": TOKEN,
        "dispatch_secret": SECRET,
        "replica_id": replica_id,
        "max_sessions": max_sessions,
        "smart_turn": False,
        "silence_timeout_seconds": 0.3,
        "shutdown_grace_seconds": 2.0,
        "log_level": "warning",
    }
    base.update(overrides)
    return ServerConfig(**base)


def instant_app(config: ServerConfig) -> FastAPI:
    """The real server app over instant engines (fixed reply, a tone as its voice)."""
    from airvoice.pipeline import Engines
    from airvoice.server.app import create_app
    from airvoice.testing.instant import InstantKokoro, InstantUltravox

    engines = Engines(InstantUltravox(), InstantKokoro(seconds_per_sentence=0.2))
    return create_app(config, engines)


@dataclass
class RunningReplica:
    replica_id: str
    url: str
    server: Any
    app: FastAPI

    @property
    def state(self) -> Any:
        return self.app.state.airvoice


@contextlib.asynccontextmanager
async def instant_replicas(
    count: int, max_sessions: int = 2, **overrides: Any
) -> AsyncIterator[list[RunningReplica]]:
    """``count`` replicas ``r0``, ``r1``, ... serving in this event loop."""
    from airvoice.server.run import bound_port, running_server

    async with contextlib.AsyncExitStack() as stack:
        replicas = []
        for i in range(count):
            config = instant_config(f"r{i}", max_sessions, **overrides)
            app = instant_app(config)
            server = await stack.enter_async_context(running_server(app, config))
            url = f"http://127.0.0.1:{bound_port(server)}"
            replicas.append(RunningReplica(f"r{i}", url, server, app))
        yield replicas


def dispatch_config(urls: list[str], **overrides: Any) -> DispatchConfig:
    base: dict[str, Any] = {
        "replicas": urls,
        "token": TOKEN,
        "secret": SECRET,
        "poll_interval_seconds": 0.2,
        "settle_seconds": 0.5,
        "retry_after_seconds": 3,
    }
    base.update(overrides)
    return DispatchConfig(**base)


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI, port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 in this event loop; yields its ``http://`` base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped during startup")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


@contextlib.asynccontextmanager
async def running_dispatcher(urls: list[str], **overrides: Any) -> AsyncIterator[str]:
    """A real dispatcher over ``urls`` in this event loop; yields its base URL."""
    from airvoice.dispatch.app import create_dispatch_app

    async with serve_app(create_dispatch_app(dispatch_config(urls, **overrides))) as url:
        yield url


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_replica_process(
    replica_id: str, max_sessions: int = 2, log_level: str = "warning"
) -> tuple[subprocess.Popen, str]:
    """A replica in its own process, starting (see ``wait_ready``); and its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "airvoice.testing.replicas", replica_id]
    command += ["--port", str(port), "--sessions", str(max_sessions), "--log-level", log_level]
    # Its log goes to a file: a pipe nobody reads fills up and stalls the server.
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the caller)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
    process.stderr = log  # read back with ``log_tail``
    return process, f"http://127.0.0.1:{port}"


def log_tail(process: subprocess.Popen, chars: int = 2000) -> str:
    """The end of what a process started here wrote to stderr."""
    log = process.stderr
    if log is None or log.closed:
        return ""
    log.seek(0)
    return log.read().decode(errors="replace")[-chars:]


def wait_ready(process: subprocess.Popen, url: str, timeout: float = 90) -> None:
    """Return once the replica at ``url`` answers ``/health`` with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the replica process failed: {log_tail(process)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the replica process did not start within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description="serve one instant-engine replica")
    parser.add_argument("replica_id")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args()
    from airvoice.server.run import AirvoiceServer, uvicorn_config

    config = instant_config(
        args.replica_id, args.sessions, port=args.port, log_level=args.log_level
    )
    AirvoiceServer(uvicorn_config(instant_app(config), config)).run()


if __name__ == "__main__":
    main()
