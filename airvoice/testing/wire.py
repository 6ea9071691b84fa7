"""A bare protocol client for server tests: real WebSocket, real protobuf frames, real pacing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airvoice import protocol

FRAME_SECONDS = 0.02


@dataclass
class Received:
    """Everything the server sent, with arrival times (``time.perf_counter``)."""

    frames: list[tuple[float, protocol.Frame]] = field(default_factory=list)

    def rtvi(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = []
        for _, frame in self.frames:
            t = protocol.rtvi_type(frame)
            if t is not None and (kind is None or t == kind):
                assert isinstance(frame, protocol.MessageFrame)
                found.append(frame.data)
        return found

    def rtvi_times(self, kind: str) -> list[float]:
        return [t for t, f in self.frames if protocol.rtvi_type(f) == kind]

    def audio(self) -> list[tuple[float, protocol.AudioFrame]]:
        return [(t, f) for t, f in self.frames if isinstance(f, protocol.AudioFrame)]

    def interruptions(self) -> list[float]:
        return [t for t, f in self.frames if isinstance(f, protocol.InterruptionFrame)]

    def bot_text(self) -> str:
        return "".join(m.get("data", {}).get("text", "") for m in self.rtvi("bot-llm-text"))


class WireClient:
    """Connects, says client-ready, streams PCM in real time and records what comes back."""

    def __init__(self, websocket: Any) -> None:
        self.ws = websocket
        self.received = Received()
        self._reader = asyncio.create_task(self._read())
        self.closed = asyncio.Event()

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, url: str, ready: bool = True, **kwargs: Any
    ) -> AsyncIterator[WireClient]:
        import websockets

        async with websockets.connect(url, max_size=None, **kwargs) as ws:
            client = cls(ws)
            try:
                if ready:
                    await client.send(protocol.client_ready("airvoice-tests"))
                    await client.wait_for_rtvi("bot-ready", timeout=10)
                yield client
            finally:
                client._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client._reader

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if isinstance(message, bytes):
                    self.received.frames.append((time.perf_counter(), protocol.decode(message)))
        except Exception:  # the connection closed
            pass
        finally:
            self.closed.set()

    async def send(self, frame: protocol.Frame) -> None:
        await self.ws.send(protocol.encode(frame))

    async def stream_pcm(self, pcm16: np.ndarray, rate: int = 16000) -> None:
        """Send int16 samples in 20 ms frames, paced in real time."""
        step = int(rate * FRAME_SECONDS)
        start = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm16), step)):
            chunk = pcm16[offset : offset + step].astype("<i2").tobytes()
            await self.send(protocol.AudioFrame(chunk, rate, 1))
            delay = start + (i + 1) * FRAME_SECONDS - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def stream_silence(self, seconds: float, rate: int = 16000) -> None:
        await self.stream_pcm(np.zeros(int(seconds * rate), dtype=np.int16), rate)

    async def wait_for_rtvi(self, kind: str, timeout: float, after: float = 0.0) -> dict[str, Any]:
        """The first RTVI message of ``kind`` that arrived after time ``after``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            for t, frame in self.received.frames:
                if t >= after and protocol.rtvi_type(frame) == kind:
                    assert isinstance(frame, protocol.MessageFrame)
                    return frame.data
            if self.closed.is_set():
                break
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no {kind!r} message within {timeout} s")
