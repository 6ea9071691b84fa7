"""The dispatcher app: ``POST /connect``, ``GET /health`` and ``PUT /replicas``.

``POST /connect`` follows Pipecat's client convention (``startBotAndConnect({endpoint})`` in
``@pipecat-ai/client-js`` posts JSON there and hands the JSON answer to the transport): the
answer is exactly ``{"ws_url": ..., "token": ...}``, the two keys that
``@pipecat-ai/websocket-transport`` accepts (it rejects any other key, and appends ``token`` to
the URL as ``?token=``). The client authenticates with the deploy token as a Bearer header.
When no replica can take a session the answer is a 503 with ``Retry-After`` and a ``detail``
that the Pipecat client shows as its error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from airvoice.dispatch.config import DispatchConfig
from airvoice.dispatch.idle import pod_idle_stop
from airvoice.dispatch.replicas import PoolSettings, ReplicaPool, websocket_url
from airvoice.session_tokens import check_secret, sign

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}
SESSION_OPTIONS = ("voice", "speed")


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _matches(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def _session_options(request: Request) -> dict[str, str]:
    """``voice``/``speed`` from the posted JSON (Pipecat's ``requestData``), if any."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(data[k]) for k in SESSION_OPTIONS if isinstance(data.get(k), str | int | float)}


def create_dispatch_app(config: DispatchConfig, pool: ReplicaPool | None = None) -> FastAPI:
    """The dispatcher app over ``config.replicas`` (or a ``pool`` made by the caller)."""
    token = config.token.get_secret_value()
    secret = check_secret(config.secret.get_secret_value())
    settings = PoolSettings(
        poll_interval=config.poll_interval_seconds,
        poll_timeout=config.poll_timeout_seconds,
        settle_seconds=config.settle_seconds,
        kv_cache_full=config.kv_cache_full,
    )
    pool = pool or ReplicaPool(config.replicas, settings)
    idle_stop = pod_idle_stop(
        pool, config.idle_timeout_minutes, config.idle_action, config.poll_interval_seconds
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.start()
        watch = asyncio.create_task(idle_stop.run()) if idle_stop is not None else None
        try:
            yield
        finally:
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
            await pool.stop()

    app = FastAPI(title="airvoice dispatch", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.pool = pool
    app.state.idle_stop = idle_stop
    if config.allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.allow_origins,
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )

    @app.post("/connect")
    async def connect(request: Request) -> JSONResponse:
        started = time.perf_counter()
        if not _matches(_bearer(request), token):
            detail = "missing or wrong token: send the deploy token as 'Authorization: Bearer'"
            return JSONResponse({"detail": detail}, 401, headers=NO_STORE)
        options = await _session_options(request)
        replica = pool.choose()
        if replica is None and not pool.fresh():
            await pool.refresh()  # before saying no on old news, look again
            replica = pool.choose()
        if replica is None:
            refused = _all_full(pool, config.retry_after_seconds)
            took = 1000 * (time.perf_counter() - started)
            refused.headers["Server-Timing"] = f"dispatch;dur={took:.3f}"
            return refused
        assert replica.replica_id is not None
        session_token = sign(secret, replica.replica_id, config.token_ttl_seconds)
        url = websocket_url(replica.url)
        if options:
            url += "?" + urlencode(options)
        took = 1000 * (time.perf_counter() - started)
        headers = {**NO_STORE, "Server-Timing": f"dispatch;dur={took:.3f}"}
        return JSONResponse({"ws_url": url, "token": session_token}, headers=headers)

    @app.get("/health")
    async def health() -> JSONResponse:
        replicas = [r.summary() for r in pool.replicas.values()]
        free = sum(r["free_sessions"] for r in replicas if r["status"] == "ok")
        status = "ok" if free > 0 else "unavailable"
        body = {"status": status, "free_sessions": free, "replicas": replicas}
        return JSONResponse(body, 200 if free > 0 else 503, headers=NO_STORE)

    @app.put("/replicas")
    async def set_replicas(request: Request) -> JSONResponse:
        """Replace the replica list (``{"replicas": [url, ...]}``); needs the signing secret."""
        if not _matches(_bearer(request), secret):
            return JSONResponse({"detail": "PUT /replicas needs the dispatch secret"}, 401)
        try:
            body: Any = await request.json()
            urls = body["replicas"]
            if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
                raise TypeError
            pool.set_urls(urls)
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"send {{'replicas': ['https://host:port', ...]}} ({exc})"
            return JSONResponse({"detail": detail}, 400)
        await pool.refresh()
        return JSONResponse({"replicas": [r.summary() for r in pool.replicas.values()]})

    return app


def _all_full(pool: ReplicaPool, retry_after: int) -> JSONResponse:
    up, sessions, slots = pool.totals()
    total = len(pool.replicas)
    if up == 0:
        detail = (
            f"no replica is answering (0 of {total}); they may be starting or down: "
            f"try again in {retry_after} s"
        )
    else:
        detail = (
            f"every replica is full or draining ({sessions} sessions on {slots} slots, "
            f"{up} of {total} replicas up); try again in {retry_after} s"
        )
    headers = {**NO_STORE, "Retry-After": str(retry_after)}
    return JSONResponse({"detail": detail}, 503, headers=headers)
