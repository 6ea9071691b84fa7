"""A protobuf serializer that survives bad clients.

Pipecat's ``ProtobufFrameSerializer`` raises on garbage bytes or text messages, which ends the
connection's receive loop, and drops other bad messages without a word. This one answers every
bad message with a clear RTVI ``error`` (rate-limited per kind), counts every one it drops, and
keeps the session going:

- audio (protobuf or RTVI ``raw-audio``) must be whole PCM16 samples, 1 or 2 channels, 8-48 kHz;
  stereo is mixed down and another rate is resampled (one resampler per session: a new rate
  replaces it);
- audio sent faster than real time beyond ``max_backlog_seconds`` is dropped, with one error;
- RTVI ``client-ready`` is noted (``ready``), with whether the client understands the
  protobuf ``interruption`` frame; it is sent only to those that do (the official Pipecat JS
  client cannot decode it and relies on RTVI ``bot-interrupted``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pipecat.frames.protobufs.frames_pb2 as frame_protos
from google.protobuf.message import DecodeError
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    InputTransportMessageFrame,
    InterruptionFrame,
)
from pipecat.serializers.protobuf import ProtobufFrameSerializer

from airvoice.protocol import INTERRUPTION_FRAME_FEATURE, RTVI_LABEL

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8_000, 48_000
MAX_CHANNELS = 2
REPORT_INTERVAL = 1.0  # seconds between two reports of the same problem
REPORT_INTERVALS = {"backlog": 10.0}  # a flood is reported once, not once a second


class BadInput(ValueError):
    """A client message that cannot be used; ``kind`` groups reports for rate limiting."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class SafeProtobufSerializer(ProtobufFrameSerializer):
    """``ProtobufFrameSerializer`` that turns bad input into a message to the client."""

    def __init__(self, sample_rate: int = 16_000, max_backlog_seconds: float = 5.0) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.report: Callable[[str], Awaitable[None]] | None = None
        self.on_drop: Callable[[], None] | None = None
        self.on_ready: Callable[[], None] | None = None
        self.bad_messages = 0
        self.ready = False
        self.interruption_frames = False
        self.last_activity = time.monotonic()
        self.max_backlog_seconds = max_backlog_seconds
        self._credit = max_backlog_seconds
        self._credit_at: float | None = None
        self._last_report: dict[str, float] = {}
        self._resampler: tuple[int, Any] | None = None

    # -- to the client ---------------------------------------------------------------------
    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, InterruptionFrame) and not self.interruption_frames:
            return None  # this client learns of barge-ins from RTVI bot-interrupted only
        return await super().serialize(frame)

    # -- from the client -------------------------------------------------------------------
    async def deserialize(self, data: str | bytes) -> Frame | None:
        self.last_activity = time.monotonic()
        try:
            frame = self._decode(data)
            if isinstance(frame, InputAudioRawFrame):
                frame = self._audio(frame)
            return frame
        except BadInput as bad:
            await self._bad(bad.kind, str(bad))
            return None

    def _decode(self, data: str | bytes) -> Frame | None:
        if isinstance(data, str):
            raise BadInput(
                "text", "text WebSocket messages are not understood: send binary protobuf Frames"
            )
        if not data:
            raise BadInput("empty", "an empty binary message is not a Frame; it was dropped")
        try:
            proto = frame_protos.Frame.FromString(data)  # type: ignore[attr-defined]
        except (DecodeError, ValueError) as exc:
            raise BadInput(
                "decode",
                "a message was not a valid protobuf Frame (pipecat frames.proto); it was dropped",
            ) from exc
        which = proto.WhichOneof("frame")
        if which is None:
            raise BadInput(
                "empty",
                "a Frame held none of text, audio, transcription, message: it was dropped",
            )
        if which == "audio":
            audio = proto.audio
            return self._checked_audio(bytes(audio.audio), audio.sample_rate, audio.num_channels)
        if which == "message":
            return self._message(proto.message.data)
        return _pipecat_frame(proto, which)

    def _message(self, text: str) -> Frame | None:
        try:
            message = json.loads(text)
        except ValueError as exc:
            raise BadInput(
                "json", "a message frame did not hold JSON: send an RTVI message object"
            ) from exc
        if not isinstance(message, dict):
            raise BadInput(
                "json",
                f"a message frame held a JSON {type(message).__name__}, not an object: send an "
                'RTVI message like {"label": "rtvi-ai", "type": ..., "id": ..., "data": ...}',
            )
        if message.get("label") != RTVI_LABEL:
            raise BadInput("label", f"a message without label {RTVI_LABEL!r} was dropped")
        kind = message.get("type")
        data = message.get("data")
        if kind in ("raw-audio", "raw-audio-batch"):
            return self._raw_audio(data)
        if kind == "client-ready":
            self._client_ready(data)
        return InputTransportMessageFrame(message=message)

    def _client_ready(self, data: Any) -> None:
        about = data.get("about") if isinstance(data, dict) else None
        features = about.get("features") if isinstance(about, dict) else None
        self.interruption_frames = isinstance(features, list) and (
            INTERRUPTION_FRAME_FEATURE in features
        )
        if not self.ready:
            self.ready = True
            if self.on_ready is not None:
                self.on_ready()

    def _raw_audio(self, data: Any) -> Frame:
        """RTVI ``raw-audio`` / ``raw-audio-batch``: checked like protobuf audio."""
        if not isinstance(data, dict):
            raise BadInput("raw-audio", "raw-audio needs data with base64Audio, sampleRate...")
        pieces = data.get("base64AudioBatch") or [data.get("base64Audio")]
        if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
            raise BadInput("raw-audio", "raw-audio needs base64Audio (a base64 string)")
        try:
            audio = b"".join(base64.b64decode(p, validate=True) for p in pieces)
        except (binascii.Error, ValueError) as exc:
            raise BadInput("raw-audio", "raw-audio base64Audio is not valid base64") from exc
        rate, channels = data.get("sampleRate"), data.get("numChannels")
        if not isinstance(rate, int) or not isinstance(channels, int):
            raise BadInput("raw-audio", "raw-audio needs integer sampleRate and numChannels fields")
        return self._checked_audio(audio, rate, channels)

    def _checked_audio(self, audio: bytes, rate: int, channels: int) -> InputAudioRawFrame:
        if not 1 <= channels <= MAX_CHANNELS:
            raise BadInput(
                "channels",
                f"audio with num_channels={channels} cannot be used: send 1 (mono) or 2 "
                "(stereo) channels of PCM16",
            )
        if not MIN_RATE <= rate <= MAX_RATE:
            raise BadInput(
                "rate",
                f"audio at {rate} Hz cannot be used: send {self.sample_rate} Hz "
                f"(anything from {MIN_RATE} to {MAX_RATE} Hz is resampled)",
            )
        if len(audio) % (2 * channels):
            raise BadInput(
                "odd",
                f"an audio frame of {len(audio)} bytes is not whole 16-bit samples for "
                f"{channels} channel(s); send PCM16 little-endian",
            )
        return InputAudioRawFrame(audio=audio, sample_rate=rate, num_channels=channels)

    def _audio(self, frame: InputAudioRawFrame) -> Frame | None:
        rate, channels = frame.sample_rate, frame.num_channels
        self._pace(len(frame.audio) / (2 * channels * rate))
        if channels == 1 and rate == self.sample_rate:
            return frame
        samples = np.frombuffer(frame.audio, dtype="<i2").reshape(-1, channels)
        mono = samples.mean(axis=1, dtype=np.float32) if channels > 1 else samples[:, 0]
        if rate != self.sample_rate:
            mono = self._resampler_for(rate).resample_chunk(mono.astype(np.float32))
        pcm = np.clip(np.rint(mono), -32768, 32767).astype("<i2").tobytes()
        return InputAudioRawFrame(audio=pcm, sample_rate=self.sample_rate, num_channels=1)

    def _pace(self, seconds: float) -> None:
        """Audio may run ahead of real time by ``max_backlog_seconds``, no more."""
        now = time.monotonic()
        if self._credit_at is not None:
            self._credit = min(self.max_backlog_seconds, self._credit + now - self._credit_at)
        self._credit_at = now
        if seconds > self._credit:
            raise BadInput(
                "backlog",
                f"audio arrives faster than real time (over {self.max_backlog_seconds:g} s "
                "ahead): the excess was dropped; send audio paced at real time",
            )
        self._credit -= seconds

    def _resampler_for(self, rate: int) -> Any:
        """The session's one resampler; a new input rate replaces it."""
        if self._resampler is None or self._resampler[0] != rate:
            import soxr

            self._resampler = (rate, soxr.ResampleStream(rate, self.sample_rate, 1, "float32"))
        return self._resampler[1]

    async def _bad(self, kind: str, message: str) -> None:
        self.bad_messages += 1
        if self.on_drop is not None:
            self.on_drop()
        now = time.monotonic()
        interval = REPORT_INTERVALS.get(kind, REPORT_INTERVAL)
        if now - self._last_report.get(kind, -interval) < interval:
            return
        self._last_report[kind] = now
        log.info("bad client message: %s", message)
        if self.report is not None:
            await self.report(message)


def _pipecat_frame(proto: Any, which: str) -> Frame | None:
    """A text, transcription or interruption Frame, built as Pipecat's serializer does."""
    cls = ProtobufFrameSerializer.DESERIALIZABLE_FIELDS.get(which)
    if cls is None:
        return None
    body = getattr(proto, which)
    fields = {f.name: getattr(body, f.name) for f in body.DESCRIPTOR.fields}
    ident, name = fields.pop("id", None), fields.pop("name", None)
    fields.pop("pts", None)
    try:
        frame = cls(**fields)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise BadInput("decode", f"a {which} Frame could not be used ({exc})") from exc
    if ident:
        frame.id = ident
    if name:
        frame.name = name
    return frame
