"""One WebSocket session: its own pipeline over the shared engines."""

from __future__ import annotations

import asyncio
import contextlib
import logging
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


class Session:
    """A live connection: transport, pipeline, worker; ``drain`` ends it gracefully."""

    def __init__(
        self,
        websocket: WebSocket,
        engines: Engines,
        settings: SessionSettings,
        metrics: ServerMetrics,
    ) -> None:
        self.websocket = websocket
        self.metrics = metrics
        self.serializer = SafeProtobufSerializer(INPUT_SAMPLE_RATE)
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
        try:
            await runner.run()
        finally:
            self.built.llm.conversation.reset()  # free the KV cache now, not at GC time

    async def _on_disconnected(self, *_: Any) -> None:
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
        self.metrics.bad_messages.inc()
        with contextlib.suppress(Exception):
            await self.worker.rtvi.send_error(message)

    async def drain(self, grace_seconds: float) -> None:
        """Let the live turn finish (up to ``grace_seconds``), then close with 1001."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        await self.built.llm.wait_idle(grace_seconds)
        while self.latency.bot_speaking and loop.time() < deadline:
            await asyncio.sleep(0.05)
        with contextlib.suppress(Exception):
            await self.websocket.close(GOING_AWAY, "the server is shutting down")
        await self.worker.cancel()
