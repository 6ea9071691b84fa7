"""``VoiceClient``: talk to an airvoice server over ``ws://`` or ``wss://``, or through a
dispatcher (``https://``: ``POST /connect`` names the replica and a session token).

It speaks the server's protobuf frames and RTVI messages (client-ready, then audio), plays
the bot's audio through a jitter buffer that is flushed on barge-in, gates the microphone while
the bot speaks unless full duplex is asked for, reconnects with backoff, and times each turn as
the user hears it. No torch, no pipecat: it works from the light install.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from airvoice import protocol
from airvoice.client.audio import ArrayMicrophone, ClockedPlayer, Microphone, Player
from airvoice.client.errors import (
    AuthError,
    ClientError,
    ConnectError,
    ServerBusyError,
    error_for_close,
)
from airvoice.client.jitter import JitterBuffer
from airvoice.client.latency import TurnLatency

if TYPE_CHECKING:  # pragma: no cover
    from airvoice.client.echo import EchoCanceller

log = logging.getLogger(__name__)

EVENTS = (
    "connected",
    "user_started_speaking",
    "user_stopped_speaking",
    "bot_text",
    "bot_started_speaking",
    "bot_stopped_speaking",
    "interrupted",
    "latency",
    "metrics",
    "error",
    "reconnecting",
    "disconnected",
)
VOICED_RMS = 500.0  # int16 RMS above which a mic frame counts as voiced (about -36 dBFS)

_QUERY_TOKEN = re.compile(r"([?&]token=)[^&#\s]*", re.I)


@dataclass
class Reply:
    """What the bot said in one turn."""

    text: str
    audio: np.ndarray
    latency: TurnLatency | None


class VoiceClient:
    """An async voice session with an airvoice server.

    >>> async with VoiceClient("wss://host/ws", token="...") as client:   # doctest: +SKIP
    ...     client.on("bot_text", lambda text: print(text, end=""))
    ...     await client.wait_closed()

    With a dispatcher URL (``https://dispatcher`` or ``.../connect``) each connection, and each
    reconnection, first asks the dispatcher for a replica; ``token`` is then the deploy token.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        microphone: Microphone | None = None,
        player: Player | None = None,
        voice: str | None = None,
        speed: float | None = None,
        duplex: Literal["half", "full", "aec"] = "half",
        echo_tail_ms: float = 300.0,
        reconnect: bool = True,
        max_reconnects: int = 5,
        ping_interval: float = 20.0,
        open_timeout: float = 10.0,
    ) -> None:
        scheme = urlsplit(url).scheme
        if scheme not in ("ws", "wss", "http", "https"):
            shown = _QUERY_TOKEN.sub(r"\1***", url)  # a URL is never printed with its token
            raise ClientError(
                f"{shown!r} is neither a server (wss://host/ws) nor a dispatcher "
                "(https://host/connect) URL"
            )
        self.dispatcher = dispatcher_connect_url(url) if scheme in ("http", "https") else None
        """The dispatcher's ``/connect`` URL, when sessions go through one."""
        self.url = url
        """The session's WebSocket URL (with a dispatcher: the replica's, once connected)."""
        self._session_token: str | None = None
        self.token = token
        self.settings = {k: v for k, v in (("voice", voice), ("speed", speed)) if v is not None}
        self.microphone = microphone
        self.player = player if player is not None else ClockedPlayer()
        self.duplex = duplex
        self.echo_tail = echo_tail_ms / 1000
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.ping_interval = ping_interval
        self.open_timeout = open_timeout
        self.buffer = JitterBuffer(on_first_audio=self._on_first_audio)
        self.echo: EchoCanceller | None = None
        if duplex == "aec":  # the mic stays open; the bot's voice is cancelled out of it
            from airvoice.client.echo import EchoCanceller

            self.echo = EchoCanceller()
            self.buffer.on_played = self.echo.far_end
        self.latencies: list[TurnLatency] = []
        self.transcript: list[str] = []
        """The bot's text, one entry per reply."""
        self.reconnects = 0
        self._handlers: dict[str, list[Callable[..., Any]]] = defaultdict(list)
        self._ws: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._closed = asyncio.Event()
        self._closing = False
        self._error: ClientError | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_voiced = 0.0
        self._turn_end: float | None = None
        self._audio_arrived: float | None = None  # the reply's first audio reached the client
        self._pending_latency: TurnLatency | None = None
        self._server_latency: dict[str, float] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._bot_speaking = False
        self._reply_started = False

    # -- events -----------------------------------------------------------------------------
    def on(self, event: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register ``handler`` for ``event`` (also usable as a decorator)."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; events are: {', '.join(EVENTS)}")

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers[event].append(fn)
            return fn

        return register(handler) if handler is not None else register

    async def _emit(self, event: str, *args: Any) -> None:
        for handler in list(self._handlers[event]):
            try:
                result = handler(*args)
                if isinstance(result, Awaitable):
                    await result
            except Exception:
                log.exception("a %s handler failed", event)

    # -- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> VoiceClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the session (and start the microphone and player); raises a ``ClientError``."""
        self._loop = asyncio.get_running_loop()
        await self._open()
        await self.player.start(self.buffer)
        self._tasks.append(asyncio.create_task(self._supervise()))
        if self.microphone is not None:
            self._tasks.append(asyncio.create_task(self._pump_microphone()))

    def _session_url(self) -> str:
        parts = urlsplit(self.url)
        query = dict(parse_qsl(parts.query))
        query.update({k: str(v) for k, v in self.settings.items()})
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open(self) -> None:
        import websockets

        token = self.token
        if self.dispatcher is not None:
            self.url, token = await self._ask_dispatcher()
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            ws = await websockets.connect(
                self._session_url(),
                additional_headers=headers,
                max_size=2**22,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                open_timeout=self.open_timeout,
            )
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            raise ConnectError(
                f"cannot reach {self._redacted_url()} ({type(exc).__name__}: {exc}); check the "
                "address and that the server (or pod) is running"
            ) from None
        try:
            await ws.send(protocol.encode(protocol.client_ready("airvoice-python")))
            await self._await_ready(ws)
        except websockets.ConnectionClosed as exc:
            error = error_for_close(exc.rcvd.code if exc.rcvd else None, _reason(exc))
            raise error or ConnectError(f"the server closed the connection: {exc}") from None
        self._ws = ws
        await self._emit("connected")

    async def _ask_dispatcher(self) -> tuple[str, str]:
        """``POST /connect``: the replica's WebSocket URL and a session token for it."""
        import httpx

        assert self.dispatcher is not None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        where = urlsplit(self.dispatcher).netloc
        try:
            async with httpx.AsyncClient(timeout=self.open_timeout) as http:
                response = await http.post(self.dispatcher, json=self.settings, headers=headers)
        except httpx.HTTPError as exc:
            raise ConnectError(
                f"cannot reach the dispatcher at {where} ({type(exc).__name__}); check the "
                "address and that it is running"
            ) from None
        detail = _detail(response)
        if response.status_code == 401:
            raise AuthError(
                f"the dispatcher refused the token ({detail}); pass the deploy token with "
                "--token or AIRVOICE_TOKEN"
            )
        if response.status_code == 503:
            retry = response.headers.get("retry-after", "a few")
            raise ServerBusyError(f"no replica can take a session now: {detail} (retry: {retry} s)")
        try:
            body = response.json()
            ws_url, token = str(body["ws_url"]), str(body["token"])
        except (ValueError, KeyError, TypeError):
            raise ConnectError(
                f"the dispatcher at {where} answered {response.status_code} without a session "
                f"({detail}); is that URL an airvoice dispatcher?"
            ) from None
        if urlsplit(ws_url).scheme not in ("ws", "wss"):
            raise ConnectError(f"the dispatcher at {where} named a non-WebSocket URL")
        self._session_token = token
        return ws_url, token

    async def _await_ready(self, ws: Any) -> None:
        async with asyncio.timeout(self.open_timeout):
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    frame = protocol.decode(message)
                    if protocol.rtvi_type(frame) == "bot-ready":
                        return
                    await self._dispatch(frame)

    def _redacted_url(self) -> str:
        parts = urlsplit(self.url)
        query = [(k, "***" if k == "token" else v) for k, v in parse_qsl(parts.query)]
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _supervise(self) -> None:
        """Receive until the socket drops; reconnect with backoff when it drops unexpectedly."""
        import websockets

        while True:
            ws = self._ws
            code, reason = None, ""
            try:
                async for message in ws:
                    if isinstance(message, bytes):
                        try:
                            frame = protocol.decode(message)
                        except protocol.ProtocolError:
                            log.warning("dropped a malformed frame from the server")
                            continue
                        await self._dispatch(frame)
            except websockets.ConnectionClosed as exc:
                code, reason = (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
            else:
                code, reason = ws.close_code, ws.close_reason or ""
            if self._closing:
                break
            error = error_for_close(code, reason)
            if self.dispatcher is not None and isinstance(error, ServerBusyError):
                error = None  # that replica stopped or filled up: the dispatcher finds another
            if error is not None or code == 1000 or not self.reconnect:
                self._error = error
                if error is not None:
                    await self._emit("error", str(error))
                break
            if not await self._reconnect():
                break
        self._ws = None
        self._closed.set()
        await self._emit("disconnected")

    async def _reconnect(self) -> bool:
        delay = 0.5
        for attempt in range(1, self.max_reconnects + 1):
            await self._emit("reconnecting", attempt)
            await asyncio.sleep(delay)
            try:
                await self._open()
            except ClientError as exc:
                retryable = (ConnectError, ServerBusyError) if self.dispatcher else ConnectError
                if not isinstance(exc, retryable):
                    self._error = exc
                    await self._emit("error", str(exc))
                    return False
                delay = min(delay * 2, 8.0)
                continue
            self.reconnects += 1
            self.buffer.flush()
            return True
        self._error = ConnectError(
            f"lost the connection to {self._redacted_url()} and could not reconnect after "
            f"{self.max_reconnects} attempts"
        )
        await self._emit("error", str(self._error))
        return False

    async def wait_closed(self) -> None:
        """Wait until the session ends; raises the ``ClientError`` that ended it, if any."""
        await self._closed.wait()
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Hang up."""
        self._closing = True
        if self.microphone is not None:
            self.microphone.close()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.player.stop()
        self._closed.set()

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # -- sending ----------------------------------------------------------------------------
    async def _send(self, frame: protocol.Frame) -> None:
        ws = self._ws
        if ws is None:
            return  # reconnecting: the frame is dropped, like audio on a dead line
        with contextlib.suppress(Exception):
            await ws.send(protocol.encode(frame))

    def _mic_open(self) -> bool:
        if self.duplex in ("full", "aec"):
            return True
        quiet_for = time.perf_counter() - self.buffer.last_audio_at
        return not self.buffer.is_playing and quiet_for > self.echo_tail

    async def _pump_microphone(self) -> None:
        assert self.microphone is not None
        silence = bytes(640)
        async for frame in self.microphone.frames():
            if self.echo is not None:
                frame = self.echo.near_end(frame)
            if not self._mic_open():
                frame = silence  # half duplex: the bot must not hear itself
            elif _rms(frame) > VOICED_RMS:
                self._last_voiced = time.perf_counter()
            await self._send(protocol.AudioFrame(frame, protocol.INPUT_SAMPLE_RATE, 1))

    async def send_audio(self, pcm16: bytes) -> None:
        """Send raw 16 kHz PCM16 (for callers that bring their own capture)."""
        if _rms(pcm16) > VOICED_RMS:
            self._last_voiced = time.perf_counter()
        await self._send(protocol.AudioFrame(pcm16, protocol.INPUT_SAMPLE_RATE, 1))

    async def send_text(self, text: str) -> None:
        """A typed user turn; the bot answers it like a spoken one."""
        data = {"content": text, "options": {"run_immediately": True, "audio_response": True}}
        self._turn_end = time.perf_counter()
        await self._send(protocol.rtvi("send-text", data))

    async def reset(self) -> None:
        """Ask the server to forget the conversation so far."""
        await self._send(protocol.rtvi("client-message", {"t": "reset", "d": {}}))

    # -- receiving --------------------------------------------------------------------------
    async def _dispatch(self, frame: protocol.Frame) -> None:
        if isinstance(frame, protocol.AudioFrame):
            if self._bot_speaking or self._reply_started:
                if self._audio_arrived is None:
                    self._audio_arrived = time.perf_counter()
                self.buffer.push(frame.audio)
            return
        if isinstance(frame, protocol.InterruptionFrame):
            if self.buffer.flush() or self._bot_speaking:
                await self._emit("interrupted")
            return
        kind = protocol.rtvi_type(frame)
        if kind is None:
            return
        data = frame.data.get("data") or {}  # type: ignore[union-attr]
        if kind == "user-started-speaking":
            await self._emit("user_started_speaking")
        elif kind == "user-stopped-speaking":
            self._turn_end = self._last_voiced or time.perf_counter()
            await self._emit("user_stopped_speaking")
        elif kind == "bot-llm-started":
            self._reply_started = True
            self._audio_arrived = None
            self.transcript.append("")
        elif kind == "bot-llm-text":
            text = str(data.get("text", ""))
            if not self.transcript:
                self.transcript.append("")
            self.transcript[-1] += text
            await self._emit("bot_text", text)
        elif kind == "bot-started-speaking":
            self._bot_speaking = True
            await self._emit("bot_started_speaking")
        elif kind == "bot-stopped-speaking":
            self._bot_speaking = False
            self._reply_started = False
            self.buffer.end_of_stream()
            await self._emit("bot_stopped_speaking")
        elif kind == "server-message" and data.get("type") == "turn-latency":
            server = {k: v for k, v in data.items() if k != "type"}
            latency, self._pending_latency = self._pending_latency, None
            if latency is not None:
                latency.server = server
                await self._finish_latency(latency)
            else:
                self._server_latency = server
        elif kind == "metrics":
            await self._emit("metrics", data)
        elif kind == "error":
            await self._emit("error", str(data.get("error", "")))

    def _on_first_audio(self, played_at: float) -> None:
        """The jitter buffer started playing (audio thread or player task)."""
        if self._turn_end is None or self._loop is None:
            return
        arrived = self._audio_arrived if self._audio_arrived is not None else played_at
        latency = TurnLatency(
            1000 * (played_at - self._turn_end), buffer_ms=1000 * (played_at - arrived)
        )
        self._turn_end = None
        self._loop.call_soon_threadsafe(self._latency_measured, latency)

    def _latency_measured(self, latency: TurnLatency) -> None:
        if self._server_latency is not None:
            latency.server, self._server_latency = self._server_latency, None
            self._spawn(self._finish_latency(latency))
            return
        self._pending_latency = latency  # the server's breakdown usually follows at once
        assert self._loop is not None
        self._loop.call_later(1.0, self._flush_pending_latency)

    def _flush_pending_latency(self) -> None:
        latency, self._pending_latency = self._pending_latency, None
        if latency is not None:
            self._spawn(self._finish_latency(latency))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _finish_latency(self, latency: TurnLatency) -> None:
        latency.fit_to_server()
        self.latencies.append(latency)
        await self._emit("latency", latency)

    # -- one-shot turns ---------------------------------------------------------------------
    async def ask(self, audio: np.ndarray, sample_rate: int, timeout: float = 60.0) -> Reply:
        """Speak ``audio`` as one turn and return the bot's whole reply (text, audio, latency).

        Needs a client created without a microphone and with the default player.
        """
        if not isinstance(self.player, ClockedPlayer) or self.microphone is not None:
            raise ClientError("ask() needs a VoiceClient without microphone and player")
        sink = self.player.sink
        start_chunks = len(sink.chunks)  # type: ignore[union-attr]
        replies_before = len(self.transcript)
        done = asyncio.Event()
        self.on("bot_stopped_speaking", done.set)
        mic = ArrayMicrophone(audio, sample_rate)
        pump = asyncio.create_task(self._pump(mic))
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await done.wait()
                    done.clear()
                    if len(self.transcript) > replies_before and not self._bot_speaking:
                        break
            await asyncio.sleep(0.1)  # let the player drain the buffer's tail
        except TimeoutError:
            raise ClientError(
                f"no reply within {timeout:.0f} s; is the audio speech, and is the server busy?"
            ) from None
        finally:
            mic.close()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            self._handlers["bot_stopped_speaking"].remove(done.set)
        pcm = b"".join(sink.chunks[start_chunks:])  # type: ignore[union-attr]
        samples = np.frombuffer(pcm, dtype="<i2")
        voiced = np.nonzero(samples)[0]
        samples = samples[voiced[0] : voiced[-1] + 1] if voiced.size else samples[:0]
        await asyncio.sleep(0)
        latency = self.latencies[-1] if self.latencies else None
        return Reply("".join(self.transcript[replies_before:]), samples.copy(), latency)

    async def _pump(self, mic: ArrayMicrophone) -> None:
        async for frame in mic.frames():
            if _rms(frame) > VOICED_RMS:
                self._last_voiced = time.perf_counter()
            await self._send(protocol.AudioFrame(frame, protocol.INPUT_SAMPLE_RATE, 1))


def _rms(pcm16: bytes) -> float:
    samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


def dispatcher_connect_url(url: str) -> str:
    """The ``POST /connect`` URL of a dispatcher given by its base URL or that URL itself."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if not path.endswith("/connect"):
        path += "/connect"
    return urlunsplit(parts._replace(path=path, fragment=""))


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail)[:300] if detail else f"HTTP {response.status_code}"


def _reason(exc: Any) -> str:
    return exc.rcvd.reason if getattr(exc, "rcvd", None) else str(exc)
