"""``KokoroTTSService``: a Pipecat TTS service over the shared Kokoro engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from pipecat.frames.frames import (
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from airvoice.engines.kokoro import KokoroEngine
from airvoice.engines.kokoro.engine import check_speed
from airvoice.errors import AirvoiceError


class KokoroTTSService(TTSService):
    """Speaks each sentence of the reply with Kokoro-82M; voice and speed are per session."""

    def __init__(self, engine: KokoroEngine, voice: str, speed: float = 1.0, **kwargs: Any) -> None:
        engine.voices.get(voice)  # an unknown voice fails here, with the names that exist
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            # Synthesis is local: a slow sentence (a busy CPU) is not a dead connection.
            stop_frame_timeout_s=15.0,
            sample_rate=engine.sample_rate,
            settings=TTSSettings(model="kokoro-82m", voice=voice, language=None),
            **kwargs,
        )
        self.engine = engine
        self.voice = voice
        self.speed = check_speed(speed)
        self._streams: set[Any] = set()

    def can_generate_metrics(self) -> bool:
        return True

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        try:
            stream = self.engine.stream(text, self.voice, self.speed)
        except AirvoiceError as exc:
            yield ErrorFrame(error=f"could not speak that sentence: {exc}")
            return
        self._streams.add(stream)
        await self.start_tts_usage_metrics(text)
        try:
            async for pcm in stream:
                await self.stop_ttfb_metrics()
                yield TTSAudioRawFrame(pcm, self.engine.sample_rate, 1, context_id=context_id)
        finally:
            self._streams.discard(stream)
            _stop(stream)

    @property
    def active_streams(self) -> int:
        """Sentences being synthesized right now for this session."""
        return len(self._streams)

    def stop_synthesis(self) -> None:
        """Abort every sentence in progress (barge-in, session end): the worker threads stop
        at once instead of finishing audio nobody will hear."""
        for stream in list(self._streams):
            _stop(stream)
        self._streams.clear()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, (InterruptionFrame, CancelFrame, EndFrame)):
            self.stop_synthesis()
        await super().process_frame(frame, direction)

    async def cleanup(self) -> None:
        self.stop_synthesis()
        await super().cleanup()


def _stop(stream: Any) -> None:
    stop = getattr(stream, "stop", None)
    if stop is not None:
        stop()
