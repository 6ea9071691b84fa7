"""A protobuf serializer that survives bad clients.

Pipecat's ``ProtobufFrameSerializer`` raises on garbage bytes or text messages, which ends the
connection's receive loop. This one reports the problem to the client (as an RTVI ``error``),
drops the message and keeps the session going. Audio at another rate is resampled to the
pipeline's rate, stereo is mixed down, and audio with an odd byte count is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np
from pipecat.frames.frames import Frame, InputAudioRawFrame
from pipecat.serializers.protobuf import ProtobufFrameSerializer

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8_000, 48_000
REPORT_INTERVAL = 1.0  # seconds between two reports of the same problem


class SafeProtobufSerializer(ProtobufFrameSerializer):
    """``ProtobufFrameSerializer`` that turns bad input into a message to the client."""

    def __init__(self, sample_rate: int = 16_000) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.report: Callable[[str], Awaitable[None]] | None = None
        self.bad_messages = 0
        self._last_report: dict[str, float] = {}
        self._resamplers: dict[int, object] = {}

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, str):
            await self._bad(
                "text", "text WebSocket messages are not understood: send binary protobuf Frames"
            )
            return None
        try:
            frame = await super().deserialize(data)
        except Exception:
            await self._bad(
                "decode",
                "a message was not a valid protobuf Frame (pipecat frames.proto); it was dropped",
            )
            return None
        if isinstance(frame, InputAudioRawFrame):
            return await self._audio(frame)
        return frame

    async def _audio(self, frame: InputAudioRawFrame) -> Frame | None:
        audio, rate, channels = frame.audio, frame.sample_rate, frame.num_channels or 1
        if len(audio) % (2 * channels):
            await self._bad(
                "odd",
                f"an audio frame of {len(audio)} bytes is not whole 16-bit samples for "
                f"{channels} channel(s); send PCM16 little-endian",
            )
            return None
        if not MIN_RATE <= rate <= MAX_RATE:
            await self._bad(
                "rate",
                f"audio at {rate} Hz cannot be used: send {self.sample_rate} Hz "
                f"(anything from {MIN_RATE} to {MAX_RATE} Hz is resampled)",
            )
            return None
        if channels == 1 and rate == self.sample_rate:
            return frame
        samples = np.frombuffer(audio, dtype="<i2").reshape(-1, channels)
        mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
        if rate != self.sample_rate:
            mono = self._resampler(rate).resample_chunk(mono.astype(np.float32))
        pcm = np.clip(np.rint(mono), -32768, 32767).astype("<i2").tobytes()
        return InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1)

    def _resampler(self, rate: int):
        if rate not in self._resamplers:
            import soxr

            self._resamplers[rate] = soxr.ResampleStream(rate, self.sample_rate, 1, dtype="float32")
        return self._resamplers[rate]

    async def _bad(self, kind: str, message: str) -> None:
        self.bad_messages += 1
        now = time.monotonic()
        if now - self._last_report.get(kind, -REPORT_INTERVAL) < REPORT_INTERVAL:
            return
        self._last_report[kind] = now
        log.info("bad client message: %s", message)
        if self.report is not None:
            await self.report(message)
