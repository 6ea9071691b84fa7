"""``UltravoxWithContextService``: a Pipecat LLM service that hears the user's audio directly.

Ultravox makes no transcript, so this service buffers the user's audio from speech start (with
a short pre-speech pad) to turn end, and answers that audio with the conversation so far. It
declares itself a realtime service so the context aggregators do not wait for a transcript.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pipecat.frames.frames import (
    CancelFrame,
    DataFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMServiceMetadataFrame,
    LLMTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.llm_service import LLMService
from pipecat.services.settings import LLMSettings

from airvoice.engines.ultravox import Conversation, ReplyStats, ReplyStream, UltravoxEngine
from airvoice.engines.ultravox.conversation import AssistantTurn
from airvoice.errors import AirvoiceError

log = logging.getLogger(__name__)

BYTES_PER_SAMPLE = 2


@dataclass
class UserAudioTurnFrame(DataFrame):
    """A finished user turn's audio, queued to the service itself so that generation runs on
    its cancellable process task (an interruption cancels it)."""

    audio: bytes = b""
    sample_rate: int = 16000


class UltravoxWithContextService(LLMService):
    """Streams Ultravox's reply to each user turn as ``LLMTextFrame``s."""

    def __init__(
        self,
        engine: UltravoxEngine,
        conversation: Conversation,
        *,
        sample_rate: int = 16000,
        pre_speech_seconds: float = 0.5,
        max_turn_seconds: float = 60.0,
        on_reply: Callable[[ReplyStats], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> None:
        settings = engine.settings
        super().__init__(
            settings=LLMSettings(
                model="ultravox",
                system_instruction=conversation.system_prompt,
                temperature=settings.temperature,
                max_tokens=settings.max_new_tokens,
                top_p=settings.top_p,
                top_k=settings.top_k or None,
                frequency_penalty=None,
                presence_penalty=None,
                seed=settings.seed,
                filter_incomplete_user_turns=None,
                user_turn_completion_config=None,
            ),
            **kwargs,
        )
        self.engine = engine
        self.conversation = conversation
        self.sample_rate = sample_rate
        self._pad_bytes = int(pre_speech_seconds * sample_rate) * BYTES_PER_SAMPLE
        self._max_bytes = int(max_turn_seconds * sample_rate) * BYTES_PER_SAMPLE
        self._pre = bytearray()
        self._turn: bytearray | None = None
        self._stream: ReplyStream | None = None
        self._on_reply = on_reply

    def service_metadata_frame(self) -> LLMServiceMetadataFrame:
        return LLMServiceMetadataFrame(service_name=self.name, is_realtime_service=True)

    def can_generate_metrics(self) -> bool:
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self._collect(frame.audio)
            return  # the microphone stops here
        if isinstance(frame, UserStartedSpeakingFrame):
            self._turn, self._pre = bytearray(self._pre), bytearray()
        elif isinstance(frame, UserStoppedSpeakingFrame) and self._turn is not None:
            audio, self._turn = bytes(self._turn), None
            await self.queue_frame(UserAudioTurnFrame(audio=audio, sample_rate=self.sample_rate))
        elif isinstance(frame, UserAudioTurnFrame):
            samples = np.frombuffer(frame.audio[: len(frame.audio) // 2 * 2], dtype="<i2")
            await self._respond(
                lambda: self.engine.respond(self.conversation, samples, frame.sample_rate)
            )
            return
        elif isinstance(frame, LLMContextFrame):
            # A typed turn (RTVI send-text): the aggregator appended it to the context.
            text = _last_user_text(frame.context.get_messages())
            if text:
                await self._respond(lambda: self.engine.respond_text(self.conversation, text))
            return
        elif isinstance(frame, (EndFrame, CancelFrame)):
            self._cancel_reply()
        await self.push_frame(frame, direction)

    def _collect(self, audio: bytes) -> None:
        if self._turn is None:
            self._pre += audio
            del self._pre[: max(0, len(self._pre) - self._pad_bytes)]
        elif len(self._turn) < self._max_bytes:
            self._turn += audio[: self._max_bytes - len(self._turn)]

    async def _respond(self, start: Callable[[], ReplyStream]) -> None:
        try:
            stream = start()
        except AirvoiceError as exc:
            await self.push_error(f"could not answer that turn: {exc}")
            return
        self._stream = stream
        try:  # from here on, however this ends (a barge-in cancels it), the reply is cancelled
            await self.start_ttfb_metrics()
            await self.push_frame(LLMFullResponseStartFrame())
            first = True
            async for delta in stream:
                if first:
                    await self.stop_ttfb_metrics()
                    first = False
                await self.push_frame(LLMTextFrame(delta))
        except AirvoiceError as exc:
            await self.push_error(f"could not answer that turn: {exc}")
        finally:
            stream.cancel()  # a no-op when the reply ended by itself
            await self.push_frame(LLMFullResponseEndFrame())
        if self._on_reply is not None:
            await self._on_reply(await stream.wait_finished())

    async def record_heard(self, text: str, interrupted: bool) -> None:
        """Replace the last reply in memory by what the user heard, when it was cut short."""
        stream = self._stream
        if not interrupted or stream is None:
            return
        await stream.wait_finished()  # the engine has committed the reply
        last = self.conversation.turns[-1] if self.conversation.turns else None
        if isinstance(last, AssistantTurn) and last.text != text:
            self.conversation.set_last_assistant_text(text)

    def _cancel_reply(self) -> None:
        if self._stream is not None:
            self._stream.cancel()

    async def cleanup(self) -> None:
        self._cancel_reply()
        await super().cleanup()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait until no reply is being generated (for graceful shutdown)."""
        stream = self._stream
        if stream is None:
            return True
        try:
            await asyncio.wait_for(stream.wait_finished(), timeout)
            return True
        except TimeoutError:
            return False


def _last_user_text(messages: list[Any]) -> str | None:
    """The text of the last user message of a Pipecat context, if it is text."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content.strip() or None
            if isinstance(content, list):
                parts = [p.get("text", "") for p in content if isinstance(p, dict)]
                return " ".join(p for p in parts if p).strip() or None
            return None
    return None
