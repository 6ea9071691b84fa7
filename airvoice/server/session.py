"""One WebSocket session: its own pipeline over the shared engines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket
from pipecat.pipeline.worker import PipelineWorker
from pipecat.transports.websocket.fastapi import (
    FastAPIWebsocketParams,
    FastAPIWebsocketTransport,
)
from pipecat.workers.runner import WorkerRunner

from airvoice.pipeline import Engines, SessionSettings, build_pipeline
from airvoice.pipeline.builder import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE
from airvoice.pipeline.serializer import SafeProtobufSerializer
from airvoice.server.metrics import ServerMetrics, TurnLatencyObserver

log = logging.getLogger(__name__)

GOING_AWAY = 1001
TIMEOUT_CLOSE_CODE = 4408


@dataclass(frozen=True)
class SessionLimits:
    """How long a session may stay silent, and how far its audio may run ahead."""

    client_ready_seconds: float = 10.0
    idle_seconds: float = 600.0
    max_backlog_seconds: float = 5.0


class Session:
    """A live connection: transport, pipeline, worker; ``drain`` ends it gracefully."""

    def __init__(
        self,
        websocket: WebSocket,
        engines: Engines,
        settings: SessionSettings,
        metrics: ServerMetrics,
        limits: SessionLimits | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self.websocket = websocket
        self.metrics = metrics
        self.limits = limits or SessionLimits()
        self._on_closed = on_closed
        self.closed_reason: str | None = None
        self.serializer = SafeProtobufSerializer(INPUT_SAMPLE_RATE, self.limits.max_backlog_seconds)
        self.serializer.on_drop = metrics.bad_messages.inc
        self.transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=self.serializer,
                audio_in_sample_rate=INPUT_SAMPLE_RATE,
                audio_out_sample_rate=OUTPUT_SAMPLE_RATE,
            ),
        )
        self.built = build_pipeline(
            settings, self.transport, engines, on_reply=metrics.observe_reply
        )
        self.latency = TurnLatencyObserver(metrics, report=self._send_latency)
        self.worker = PipelineWorker(
            self.built.pipeline,
            params=self.built.params,
            observers=[self.latency],
            idle_timeout_secs=None,
            cancel_on_idle_timeout=False,
        )
        self.serializer.report = self._report_bad_input
        self.transport.event_handler("on_client_disconnected")(self._on_disconnected)
        self.worker.rtvi.event_handler("on_client_message")(self._on_client_message)

    @property
    def conversation(self) -> Any:
        return self.built.llm.conversation

    async def run(self) -> None:
        """Run until the client leaves or the session is closed."""
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(self.worker)
        watchdog = asyncio.create_task(self._watch(), name="airvoice-session-watchdog")
        try:
            await runner.run()
        finally:
            self._socket_closed()
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watchdog
            self.built.tts.stop_synthesis()
            self.built.llm.conversation.reset()  # free the KV cache now, not at GC time

    def _socket_closed(self) -> None:
        """The client's socket is gone: give the slot back now (teardown may go on)."""
        callback, self._on_closed = self._on_closed, None
        if callback is not None:
            callback()

    async def _on_disconnected(self, *_: Any) -> None:
        self._socket_closed()
        await self.worker.cancel()

    async def _watch(self) -> None:
        """Close a session that never says client-ready, or that goes quiet for too long."""
        limits = self.limits
        ready_by = time.monotonic() + limits.client_ready_seconds
        while not self.serializer.ready:
            if time.monotonic() >= ready_by:
                await self.close(
                    TIMEOUT_CLOSE_CODE,
                    f"no client-ready within {limits.client_ready_seconds:g} s: send the RTVI "
                    "client-ready message right after connecting",
                )
                return
            await asyncio.sleep(min(0.25, limits.client_ready_seconds))
        while True:
            idle = time.monotonic() - self.serializer.last_activity
            if idle >= limits.idle_seconds:
                await self.close(
                    TIMEOUT_CLOSE_CODE,
                    f"idle for {limits.idle_seconds:g} s (no audio, no message): reconnect to "
                    "talk again",
                )
                return
            await asyncio.sleep(min(5.0, limits.idle_seconds - idle))

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` and ``reason``, free the slot, end the pipeline."""
        self.closed_reason = reason
        log.info("closing a session (%d): %s", code, reason)
        self._socket_closed()
        with contextlib.suppress(Exception):
            await self.websocket.close(code, reason)
        await self.worker.cancel()

    async def _on_client_message(self, rtvi: Any, message: Any) -> None:
        if message.type == "reset":
            self.built.llm.conversation.reset()
            await rtvi.send_server_response(message, {"reset": True})
        else:
            await rtvi.send_error_response(
                message, f"unknown client message {message.type!r}; airvoice knows 'reset'"
            )

    async def _send_latency(self, breakdown: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await self.worker.rtvi.send_server_message({"type": "turn-latency", **breakdown})

    async def _report_bad_input(self, message: str) -> None:
        with contextlib.suppress(Exception):
            await self.worker.rtvi.send_error(message)

    async def drain(self, grace_seconds: float) -> None:
        """Let the live turn finish (up to ``grace_seconds``), then close with 1001."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        await self.built.llm.wait_idle(grace_seconds)
        while self.latency.bot_speaking and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await self.close(GOING_AWAY, "the server is shutting down")
