"""Prometheus metrics, and the observer that times each turn as the user lives it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import BaseObserver, FramePushed
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from airvoice.engines.ultravox import ReplyStats

_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class ServerMetrics:
    """The server's metrics, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.active_sessions = Gauge("airvoice_active_sessions", "Open sessions.", registry=r)
        self.sessions = Counter("airvoice_sessions", "Sessions accepted.", registry=r)
        self.refused = Counter(
            "airvoice_sessions_refused", "Connections refused.", ["reason"], registry=r
        )
        self.turns = Counter("airvoice_turns", "User turns answered.", registry=r)
        self.bad_messages = Counter(
            "airvoice_bad_client_messages", "Client messages dropped as malformed.", registry=r
        )
        self.turn_to_first_audio = Histogram(
            "airvoice_turn_end_to_first_audio_seconds",
            "From the end of the user's turn to the first bot audio sent.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "airvoice_llm_time_to_first_token_seconds",
            "From the user's turn to Ultravox's first token.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_tts_audio = Histogram(
            "airvoice_tts_time_to_first_audio_seconds",
            "From the reply's first text to Kokoro's first audio.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

        self.engine_kv_cache_usage = Gauge(
            "airvoice_engine_kv_cache_usage",
            "Share of the Ultravox engine's KV cache in use (0-1; vLLM only).",
            registry=r,
        )
        self.engine_running = Gauge(
            "airvoice_engine_running_requests", "Replies being generated.", registry=r
        )
        self.engine_waiting = Gauge(
            "airvoice_engine_waiting_requests", "Replies waiting for the engine.", registry=r
        )
        self.engine_prefix_cache_hit_rate = Gauge(
            "airvoice_engine_prefix_cache_hit_rate",
            "Share of prompt tokens found in the prefix cache (0-1; vLLM only).",
            registry=r,
        )
        self.asyncio_tasks = Gauge(
            "airvoice_asyncio_tasks", "Tasks alive in the server's event loop.", registry=r
        )
        self.threads = Gauge(
            "airvoice_threads", "Threads of the process (native ones too).", registry=r
        )
        self.open_fds = Gauge(
            "airvoice_open_file_descriptors", "File descriptors open in the process.", registry=r
        )
        self.connections = Gauge(
            "airvoice_open_connections", "HTTP and WebSocket connections open.", registry=r
        )

    def sample_process(self, connections: Any = None) -> None:
        """Set the task, thread, descriptor and connection gauges (at each scrape)."""
        self.asyncio_tasks.set(len(asyncio.all_tasks()))
        self.threads.set(_os_threads() or threading.active_count())
        with contextlib.suppress(OSError):  # not Linux
            self.open_fds.set(len(os.listdir("/proc/self/fd")))
        if connections is not None:
            self.connections.set(connections.total)

    def observe_engine(self, health: dict[str, Any]) -> None:
        """Copy the engine's ``/health`` block into the gauges (NaN where it has no value)."""
        nan = float("nan")
        kv, hits = health.get("kv_cache_usage"), health.get("prefix_cache_hit_rate")
        self.engine_kv_cache_usage.set(nan if kv is None else kv)
        self.engine_running.set(health.get("running", 0))
        self.engine_waiting.set(health.get("waiting", 0))
        self.engine_prefix_cache_hit_rate.set(nan if hits is None else hits)

    async def observe_reply(self, stats: ReplyStats) -> None:
        self.turns.inc()
        if stats.time_to_first_token is not None:
            self.time_to_first_token.observe(stats.time_to_first_token)


def _os_threads() -> int | None:
    """Threads of this process as the OS counts them (native pools included), on Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class TurnLatencyObserver(BaseObserver):
    """Times each turn on the server's clock, in consecutive parts that add up to the whole:
    end of the user's turn -> first LLM text -> first TTS audio -> first bot audio sent.

    The turn ends at the last ``UserStoppedSpeakingFrame`` before the bot speaks: when the user
    resumes talking (a pause that was not the end), the earlier end no longer counts.
    """

    def __init__(
        self,
        metrics: ServerMetrics,
        report: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__()
        self.metrics = metrics
        self.report = report
        self.turn_ended: float | None = None
        self.first_text: float | None = None
        self.first_tts: float | None = None
        self.bot_speaking = False
        self.last: dict[str, Any] | None = None
        self._seen: set[int] = set()  # a frame (and its upstream twin) is seen at every hop

    async def on_push_frame(self, data: FramePushed) -> None:
        frame = data.frame
        now = time.perf_counter()
        if isinstance(frame, BotStartedSpeakingFrame):
            self.bot_speaking = True
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self.bot_speaking = False
        if isinstance(frame, UserStartedSpeakingFrame | UserStoppedSpeakingFrame):
            if frame.id in self._seen:
                return
            self._seen = {frame.id, getattr(frame, "broadcast_sibling_id", None) or frame.id}
            if isinstance(frame, UserStartedSpeakingFrame):
                self.turn_ended = None
            else:
                self.turn_ended, self.first_text, self.first_tts = now, None, None
        elif self.turn_ended is None:
            return
        elif isinstance(frame, LLMTextFrame) and self.first_text is None:
            self.first_text = now
        elif isinstance(frame, TTSAudioRawFrame) and self.first_tts is None:
            self.first_tts = now
        elif isinstance(frame, BotStartedSpeakingFrame):
            await self._turn_done(now)

    async def _turn_done(self, now: float) -> None:
        assert self.turn_ended is not None
        total = now - self.turn_ended
        self.metrics.turn_to_first_audio.observe(total)
        breakdown: dict[str, Any] = {"turn_end_to_first_audio_ms": round(1000 * total, 1)}
        if self.first_text is not None and self.first_tts is not None:
            tts = self.first_tts - self.first_text
            self.metrics.time_to_first_tts_audio.observe(tts)
            breakdown["llm_first_text_ms"] = round(1000 * (self.first_text - self.turn_ended), 1)
            breakdown["tts_first_audio_ms"] = round(1000 * tts, 1)
            breakdown["send_first_audio_ms"] = round(1000 * (now - self.first_tts), 1)
        self.turn_ended = None
        self.last = breakdown
        if self.report is not None:
            await self.report(breakdown)
