"""The wire format between airvoice clients and the server, with no pipecat import.

Binary WebSocket messages are Pipecat's protobuf ``Frame`` (``frames.proto``: ``text``,
``audio``, ``transcription``, ``message``, ``interruption``). ``message`` frames carry RTVI 2.x
JSON (label ``rtvi-ai``). This module encodes and decodes that small schema by hand, so the
light client needs neither pipecat nor the protobuf runtime.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

RTVI_LABEL = "rtvi-ai"
RTVI_VERSION = "2.2.0"
INPUT_SAMPLE_RATE = 16_000
"""The server hears 16 kHz mono PCM16."""
OUTPUT_SAMPLE_RATE = 24_000
"""The server speaks 24 kHz mono PCM16."""
INTERRUPTION_FRAME_FEATURE = "interruption-frame"
"""Declared in ``client-ready`` (``about.features``) by clients that decode the protobuf
``interruption`` frame; the server sends it only to them (the official Pipecat JS client
cannot decode it and learns of barge-ins from RTVI ``bot-interrupted``)."""

# Field numbers of frames.proto.
_TEXT, _AUDIO, _TRANSCRIPTION, _MESSAGE, _INTERRUPTION = 1, 2, 3, 4, 5


class ProtocolError(ValueError):
    """Bytes that are not a valid ``Frame`` message."""


@dataclass(frozen=True)
class AudioFrame:
    """PCM16 little-endian audio."""

    audio: bytes
    sample_rate: int
    num_channels: int = 1


@dataclass(frozen=True)
class TextFrame:
    text: str


@dataclass(frozen=True)
class TranscriptionFrame:
    text: str
    user_id: str = ""
    timestamp: str = ""


@dataclass(frozen=True)
class MessageFrame:
    """An RTVI (or other JSON) message."""

    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InterruptionFrame:
    """The server tells the client to drop the audio it has not played yet."""


Frame = AudioFrame | TextFrame | TranscriptionFrame | MessageFrame | InterruptionFrame


# -- protobuf primitives -----------------------------------------------------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, value: bytes) -> bytes:
    return _key(number, 2) + _varint(len(value)) + value


def _int_field(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value) if value else b""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtocolError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtocolError("varint too long")


def _fields(data: bytes) -> dict[int, bytes | int]:
    """Parse one message level: field number -> last value (bytes or int)."""
    fields: dict[int, bytes | int] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtocolError("field number 0")
        if wire_type == 0:
            fields[number], pos = _read_varint(data, pos)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ProtocolError("truncated length-delimited field")
            fields[number] = data[pos : pos + length]
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ProtocolError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise ProtocolError("truncated fixed-width field")
    return fields


def _text(fields: dict[int, bytes | int], number: int) -> str:
    value = fields.get(number, b"")
    if not isinstance(value, bytes):
        raise ProtocolError(f"field {number} should be a string")
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"field {number} is not UTF-8") from exc


# -- Frame encode / decode ---------------------------------------------------------------
def encode(frame: Frame) -> bytes:
    """Serialize a frame as a protobuf ``Frame``."""
    if isinstance(frame, AudioFrame):
        body = (
            _bytes_field(3, frame.audio)
            + _int_field(4, frame.sample_rate)
            + _int_field(5, frame.num_channels)
        )
        return _bytes_field(_AUDIO, body)
    if isinstance(frame, MessageFrame):
        return _bytes_field(_MESSAGE, _bytes_field(1, json.dumps(frame.data).encode()))
    if isinstance(frame, TextFrame):
        return _bytes_field(_TEXT, _bytes_field(3, frame.text.encode()))
    if isinstance(frame, TranscriptionFrame):
        body = (
            _bytes_field(3, frame.text.encode())
            + _bytes_field(4, frame.user_id.encode())
            + _bytes_field(5, frame.timestamp.encode())
        )
        return _bytes_field(_TRANSCRIPTION, body)
    if isinstance(frame, InterruptionFrame):
        return _bytes_field(_INTERRUPTION, b"")
    raise TypeError(f"cannot encode {type(frame).__name__}")


def decode(data: bytes) -> Frame:
    """Parse a protobuf ``Frame``; raises ``ProtocolError`` on anything else."""
    outer = _fields(bytes(data))
    kinds = [n for n in (_TEXT, _AUDIO, _TRANSCRIPTION, _MESSAGE, _INTERRUPTION) if n in outer]
    if len(kinds) != 1:
        raise ProtocolError("a Frame must hold exactly one of text/audio/transcription/message/…")
    kind = kinds[0]
    body = outer[kind]
    if not isinstance(body, bytes):
        raise ProtocolError("frame body is not a message")
    inner = _fields(body)
    if kind == _AUDIO:
        audio = inner.get(3, b"")
        rate, channels = inner.get(4, 0), inner.get(5, 0)
        if (
            not isinstance(audio, bytes)
            or not isinstance(rate, int)
            or not isinstance(channels, int)
        ):
            raise ProtocolError("malformed audio frame")
        return AudioFrame(audio, rate, channels)
    if kind == _MESSAGE:
        try:
            data = json.loads(_text(inner, 1) or "null")
        except json.JSONDecodeError as exc:
            raise ProtocolError("message frame is not JSON") from exc
        if not isinstance(data, dict):
            raise ProtocolError("message frame JSON must be an object")
        return MessageFrame(data)
    if kind == _TEXT:
        return TextFrame(_text(inner, 3))
    if kind == _TRANSCRIPTION:
        return TranscriptionFrame(_text(inner, 3), _text(inner, 4), _text(inner, 5))
    return InterruptionFrame()


# -- RTVI --------------------------------------------------------------------------------
def rtvi(kind: str, data: dict[str, Any] | None = None, msg_id: str | None = None) -> MessageFrame:
    """An RTVI client message (every client message needs an id)."""
    message: dict[str, Any] = {"label": RTVI_LABEL, "type": kind, "id": msg_id or uuid.uuid4().hex}
    if data is not None:
        message["data"] = data
    return MessageFrame(message)


def client_ready(
    library: str = "airvoice", features: tuple[str, ...] = (INTERRUPTION_FRAME_FEATURE,)
) -> MessageFrame:
    """The first message a client sends; the server answers ``bot-ready``. ``features`` says
    what this client understands beyond RTVI (by default: the ``interruption`` frame)."""
    about = {"library": library, "features": list(features)}
    return rtvi("client-ready", {"version": RTVI_VERSION, "about": about})


def rtvi_type(frame: Frame) -> str | None:
    """The RTVI ``type`` of a message frame, if it is one."""
    if isinstance(frame, MessageFrame) and frame.data.get("label") == RTVI_LABEL:
        kind = frame.data.get("type")
        return kind if isinstance(kind, str) else None
    return None
