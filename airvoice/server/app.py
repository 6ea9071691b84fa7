"""The FastAPI app: ``/ws`` (voice sessions), ``/health``, ``/drain``, ``/metrics`` and ``/``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from airvoice.config import ServerConfig
from airvoice.server.auth import (
    UNAUTHORIZED_CLOSE_CODE,
    credentials_from,
    generate_token,
    refusal,
    token_matches,
)
from airvoice.server.memory import MemoryTrimmer, freeze_startup_objects, limit_malloc_arenas
from airvoice.server.metrics import ServerMetrics
from airvoice.server.slots import DEFAULT_SESSIONS, FULL_CLOSE_CODE, SessionSlots, session_limit
from airvoice.server.web import add_web_client
from airvoice.session_tokens import SessionTokenChecker

log = logging.getLogger(__name__)

TRY_AGAIN_LATER = 1013
BAD_SETTINGS_CLOSE_CODE = 4400
FORBIDDEN_ORIGIN_CLOSE_CODE = 4003
SLOT_WAIT_SECONDS = 1.0
"""A full server waits this long for a leaving client's slot before it answers 1008."""


@dataclass
class ServerState:
    """What the app shares between requests."""

    config: ServerConfig
    token: str
    engines: Any = None
    load_error: str | None = None
    slots: SessionSlots = field(init=False)
    metrics: ServerMetrics = field(default_factory=ServerMetrics)
    sessions: set[Any] = field(default_factory=set)
    draining: bool = False
    shutting_down: bool = False
    exit_when_drained: bool = False
    replica: str = ""
    session_tokens: SessionTokenChecker | None = None
    connections: Any = None
    """The ``ConnectionGuard`` of the uvicorn server running the app, once there is one."""
    trimmer: MemoryTrimmer = field(default_factory=MemoryTrimmer)
    request_exit: Callable[[], None] = field(default=lambda: os.kill(os.getpid(), signal.SIGTERM))

    def __post_init__(self) -> None:
        self.slots = SessionSlots(self.config.max_sessions or DEFAULT_SESSIONS)
        self.replica = (
            self.config.replica_id or os.environ.get("RUNPOD_POD_ID") or secrets.token_hex(6)
        )
        if self.config.dispatch_secret is not None:
            secret = self.config.dispatch_secret.get_secret_value()
            self.session_tokens = SessionTokenChecker(secret, self.replica)

    def fit_sessions_to_engine(self) -> None:
        """Set the session limit once the engine is up (see ``slots.session_limit``)."""
        self.slots.limit = session_limit(self.config.max_sessions, engine_health(self.engines))
        self.slots.notify()
        log.info("taking up to %d sessions at once", self.slots.limit)

    def start_draining(self) -> None:
        """Take no new session; live sessions go on until their clients hang up."""
        self.draining = True

    async def drain(self) -> None:
        """Shut down: refuse new sessions, let live turns finish, close sessions with 1001."""
        self.draining = self.shutting_down = True
        grace = self.config.shutdown_grace_seconds
        await asyncio.gather(*(s.drain(grace) for s in list(self.sessions)))


def create_app(config: ServerConfig, engines: Any = None) -> FastAPI:
    """The server app. ``engines`` (an ``airvoice.pipeline.Engines``) are loaded at startup
    from ``config`` unless given."""
    token = config.token.get_secret_value() if config.token else generate_token()
    state = ServerState(config=config, token=token, engines=engines)
    limit_malloc_arenas()  # before the sessions' threads: RSS levels off (see memory.py)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.engines is None:
            from airvoice.server.engines import load_engines

            try:
                state.engines = await asyncio.to_thread(load_engines, config)
            except Exception as exc:
                state.load_error = f"{type(exc).__name__}: {exc}"
                log.error("could not load the models: %s", state.load_error)
        if state.engines is not None:
            state.fit_sessions_to_engine()
        freeze_startup_objects()  # later collections walk only what sessions make
        state.trimmer.start()
        watchers = [asyncio.create_task(_exit_when_drained(state))]
        if config.idle_shutdown_minutes:
            minutes = config.idle_shutdown_minutes
            watchers.append(asyncio.create_task(_idle_shutdown(state, 60 * minutes)))
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.cancel()
            if state.sessions:
                await state.drain()
            await state.trimmer.stop()

    app = FastAPI(title="airvoice", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.airvoice = state

    @app.get("/health")
    async def health() -> JSONResponse:
        body: dict[str, Any] = {
            "sessions": state.slots.active,
            "max_sessions": state.slots.limit,
            "free_sessions": 0 if state.draining else state.slots.free,
            "sessions_started": state.slots.total,
            "draining": state.draining,
            "replica": state.replica,
        }
        if state.engines is not None:
            body["engine"] = engine_health(state.engines)
        if state.engines is None:
            reason = state.load_error or "the models are still loading"
            return JSONResponse({"status": "unavailable", "reason": reason, **body}, 503)
        if state.draining:
            reason = "shutting down" if state.shutting_down else "draining: no new sessions"
            return JSONResponse({"status": "unavailable", "reason": reason, **body}, 503)
        if state.slots.free == 0:
            reason = "every session slot is taken"
            return JSONResponse({"status": "unavailable", "reason": reason, **body}, 503)
        return JSONResponse({"status": "ok", **body})

    @app.post("/drain")
    async def drain(request: Request, exit: bool = False) -> JSONResponse:
        """Stop taking sessions and let the live ones finish; ``?exit=true`` also stops the
        server once the last one has ended. Needs the deploy token (Bearer)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token_matches(given.strip(), state.token):
            return JSONResponse({"detail": "POST /drain needs the deploy token as Bearer"}, 401)
        state.start_draining()
        state.exit_when_drained = state.exit_when_drained or exit
        state.slots.notify()
        log.info("draining: %d live sessions to finish", state.slots.active)
        return JSONResponse(
            {"draining": True, "sessions": state.slots.active, "exit": state.exit_when_drained},
            202,
        )

    @app.get("/metrics")
    async def metrics() -> Response:
        state.metrics.active_sessions.set(state.slots.active)
        state.metrics.sample_process(state.connections)
        if state.engines is not None:
            state.metrics.observe_engine(engine_health(state.engines))
        return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    add_web_client(app)  # / and /static/<file>

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await _serve_session(state, websocket)

    return app


def engine_health(engines: Any) -> dict[str, Any]:
    """The Ultravox engine's load: name, KV cache usage (0-1), running and waiting requests,
    prefix-cache hit rate (None where the engine has no such thing)."""
    return engines.ultravox.health()


async def _refuse(websocket: WebSocket, subprotocol: str | None, code: int, reason: str) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await websocket.close(code, reason)


async def _serve_session(state: ServerState, websocket: WebSocket) -> None:
    """One WebSocket, its log lines rate-limited as its own (``logs.current_session``)."""
    from airvoice.server.logs import current_session, forget_session

    context = current_session.set(secrets.token_hex(6))
    try:
        await _run_session(state, websocket)
    finally:
        session_id = current_session.get()
        current_session.reset(context)
        dropped = forget_session(session_id) if session_id else 0
        if dropped:
            log.info("a session ended; %d of its log lines were not written (rate limit)", dropped)


async def _run_session(state: ServerState, websocket: WebSocket) -> None:
    from airvoice.server.session import Session, SessionLimits

    offered = list(websocket.scope.get("subprotocols") or [])
    creds = credentials_from(websocket.headers, websocket.query_params, offered)
    metrics = state.metrics
    if not origin_allowed(websocket.headers, state.config.allowed_origins):
        metrics.refused.labels("origin").inc()
        reason = "this page's origin may not connect (see the allowed_origins setting)"
        await _refuse(websocket, creds.subprotocol, FORBIDDEN_ORIGIN_CLOSE_CODE, reason)
        return
    refused = refusal(creds.token, state.token, state.session_tokens)
    if refused is not None:
        metrics.refused.labels("token").inc()
        await _refuse(websocket, creds.subprotocol, UNAUTHORIZED_CLOSE_CODE, refused)
        return
    if state.draining:
        metrics.refused.labels("shutdown").inc()
        reason = "the server is shutting down" if state.shutting_down else "the server is draining"
        await _refuse(websocket, creds.subprotocol, 1001, reason + "; connect again elsewhere")
        return
    if state.engines is None:
        metrics.refused.labels("loading").inc()
        reason = "the models are not loaded (see /health); try again in a minute"
        await _refuse(websocket, creds.subprotocol, TRY_AGAIN_LATER, reason)
        return
    try:
        settings = _session_settings(state.config, state.engines, websocket.query_params)
    except ValueError as exc:
        metrics.refused.labels("settings").inc()
        await _refuse(websocket, creds.subprotocol, BAD_SETTINGS_CLOSE_CODE, str(exc)[:120])
        return
    lease = await state.slots.lease(SLOT_WAIT_SECONDS)
    if lease is None:
        metrics.refused.labels("full").inc()
        reason = f"server full: {state.slots.limit} sessions open; try again later"
        await _refuse(websocket, creds.subprotocol, FULL_CLOSE_CODE, reason)
        return
    session = None
    config = state.config
    limits = SessionLimits(
        client_ready_seconds=config.client_ready_timeout_seconds,
        idle_seconds=60 * config.session_idle_minutes,
        max_backlog_seconds=config.max_input_backlog_seconds,
    )
    try:
        metrics.sessions.inc()
        await websocket.accept(subprotocol=creds.subprotocol)
        session = Session(websocket, state.engines, settings, metrics, limits, lease.release)
        state.sessions.add(session)
        await session.run()
    finally:
        lease.release()
        if session is not None:
            state.sessions.discard(session)
        state.trimmer.request()  # the session's memory is free: give it back to the OS


def origin_allowed(headers: Any, allowed: list[str]) -> bool:
    """A browser's ``Origin`` must be this server's own (same host as ``Host``) or listed;
    clients that send no Origin (not browsers) pass: the token protects them."""
    origin = headers.get("origin")
    if origin is None or "*" in allowed:
        return True
    origin = origin.strip().rstrip("/")
    if origin in (a.rstrip("/") for a in allowed):
        return True
    _scheme, sep, netloc = origin.partition("://")
    host = headers.get("host", "")
    return bool(sep and host) and netloc.lower() == host.strip().lower()


def _session_settings(config: ServerConfig, engines: Any, query: Any) -> Any:
    """Per-session voice and speed from the query string, over the server's defaults."""
    from airvoice.engines.kokoro.engine import check_speed
    from airvoice.errors import AirvoiceError
    from airvoice.pipeline import SessionSettings, TurnSettings

    voice = query.get("voice") or config.voice
    try:
        engines.kokoro.voices.get(voice)
        speed = check_speed(query.get("speed", config.speed))
    except AirvoiceError as exc:
        raise ValueError(str(exc)) from exc
    turns = TurnSettings(
        vad_confidence=config.vad_confidence,
        vad_start_seconds=config.vad_start_seconds,
        vad_stop_seconds=config.vad_stop_seconds,
        vad_min_volume=config.vad_min_volume,
        smart_turn=config.smart_turn,
        smart_turn_max_silence_seconds=config.smart_turn_max_silence_seconds,
        silence_timeout_seconds=config.silence_timeout_seconds,
    )
    extra = {"system_prompt": config.system_prompt} if config.system_prompt else {}
    return SessionSettings(voice=voice, speed=speed, turns=turns, **extra)


async def _exit_when_drained(state: ServerState) -> None:
    """Stop the server once a drain that asked for it has no live session left."""
    while not (state.exit_when_drained and state.slots.active == 0):
        await state.slots.wait_changed(5.0)
    log.info("drained: every session has ended; shutting down")
    state.request_exit()


async def _idle_shutdown(state: ServerState, limit_seconds: float) -> None:
    """Exit when no session has been open for ``limit_seconds``."""
    while True:
        idle = state.slots.idle_seconds()
        if state.slots.active == 0 and idle >= limit_seconds:
            log.info("no session for %.0f s: shutting down (idle shutdown)", idle)
            state.request_exit()
            return
        await state.slots.wait_changed(max(0.05, limit_seconds - idle))
