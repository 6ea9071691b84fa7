"""Run the app under uvicorn with airvoice's shutdown: drain sessions first, then exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

from airvoice.config import ServerConfig, parse_networks

log = logging.getLogger(__name__)


class AirvoiceServer(uvicorn.Server):
    """On the first SIGTERM/SIGINT: refuse new sessions, let live turns finish (up to the
    grace period), close sessions with 1001, then stop. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        app = config.app
        state = getattr(app.state, "airvoice", None) if isinstance(app, FastAPI) else None
        self.state = state
        if state is not None:
            state.request_exit = self.request_exit

    async def serve(self, sockets: list | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def request_exit(self) -> None:
        """Begin a graceful shutdown (safe from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._begin_shutdown)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining or self.state is None or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._loop.call_soon_threadsafe(self._begin_shutdown)

    def _begin_shutdown(self) -> None:
        if self._draining:
            self.should_exit = True
            return
        self._draining = True
        task = asyncio.ensure_future(self._drain_then_exit())
        task.add_done_callback(lambda _: None)

    async def _drain_then_exit(self) -> None:
        if self.state is not None:
            with contextlib.suppress(Exception):
                await self.state.drain()
        self.should_exit = True


def uvicorn_config(app: FastAPI, config: ServerConfig, **overrides: object) -> uvicorn.Config:
    """uvicorn settings for airvoice: pings every 20 s, bounded messages and request heads,
    a handshake deadline and a cap per client address, TLS if given, token-free logs."""
    from airvoice.server.connections import (
        ConnectionGuard,
        GuardedH11Protocol,
        GuardedWebSocketProtocol,
    )
    from airvoice.server.logs import ScrubFilter, install_filter

    options: dict[str, object] = {
        "host": config.host,
        "port": config.port,
        "http": GuardedH11Protocol,
        "ws": GuardedWebSocketProtocol,
        "ws_ping_interval": config.ping_interval_seconds,
        "ws_ping_timeout": config.ping_interval_seconds,
        "ws_max_size": config.max_message_bytes,
        "h11_max_incomplete_event_size": 16 * 1024,
        # The client address of the access log and the app: from X-Forwarded-For only when the
        # peer is a trusted proxy (uvicorn's default would believe any local peer).
        "proxy_headers": bool(config.trusted_proxies),
        "forwarded_allow_ips": list(config.trusted_proxies),
        "timeout_keep_alive": 5,
        "log_level": config.log_level,
        "ssl_certfile": config.ssl_certfile,
        "ssl_keyfile": config.ssl_keyfile,
        "timeout_graceful_shutdown": config.shutdown_grace_seconds + 5,
        "lifespan": "on",
    }
    options.update(overrides)
    result = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    guard = ConnectionGuard(
        config.max_connections_per_address,
        config.handshake_timeout_seconds,
        body_seconds=config.request_body_timeout_seconds,
        max_body_bytes=config.max_message_bytes,
        trusted=parse_networks(config.trusted_proxies),
    )
    result.airvoice_guard = guard  # type: ignore[attr-defined]
    state = getattr(app.state, "airvoice", None) if isinstance(app, FastAPI) else None
    if state is not None:
        state.connections = guard
    # uvicorn's loggers print each request line with its query string (?token=...).
    install_filter(ScrubFilter(state.token if state is not None else None))
    return result


@contextlib.asynccontextmanager
async def running_server(
    app: FastAPI, config: ServerConfig, **overrides: object
) -> AsyncIterator[AirvoiceServer]:
    """Serve ``app`` in this event loop until the block ends (tests, embedding)."""
    server = AirvoiceServer(uvicorn_config(app, config, **overrides))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()  # raise what went wrong at startup
                raise RuntimeError("the server stopped during startup")
            await asyncio.sleep(0.01)
        yield server
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


def bound_port(server: uvicorn.Server) -> int:
    """The TCP port a started server listens on (useful with port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


class ServerThread:
    """Serve an app on a thread of its own (for synchronous callers: CLI tests, scripts)."""

    def __init__(self, app: FastAPI, config: ServerConfig, **overrides: object) -> None:
        self.server = AirvoiceServer(uvicorn_config(app, config, **overrides))
        self.server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self.server.run, name="airvoice-server", daemon=True)

    def __enter__(self) -> AirvoiceServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)
