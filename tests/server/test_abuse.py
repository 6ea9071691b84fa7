"""The server under abuse (issue 15): each test attacks a real server on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import threading
import time

import httpx
import numpy as np
import pytest
import websockets

from airvoice import protocol
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.procstat import sample
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url
from airvoice.testing.wire import WireClient


def _port(server) -> int:
    return bound_port(server)


async def _close_of(url, timeout=8.0, **kwargs):
    """Connect and wait (without a word) for the server to close: (code, reason)."""
    async with websockets.connect(url, **kwargs) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            async with asyncio.timeout(timeout):
                while True:
                    await ws.recv()  # whatever the server says first, it must then close
    return info.value.rcvd.code, info.value.rcvd.reason


async def _wait(predicate, timeout, message):
    deadline = time.perf_counter() + timeout
    while not predicate():
        assert time.perf_counter() < deadline, message()
        await asyncio.sleep(0.02)


async def _errors(client, count, timeout=5.0):
    await _wait(
        lambda: len(client.received.rtvi("error")) >= count,
        timeout,
        lambda: f"expected {count} errors, got {client.received.rtvi('error')}",
    )
    return [e["data"]["error"] for e in client.received.rtvi("error")]


def _kokoro_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "kokoro-tts")


# -- item 2: an interrupted reply stops its TTS and LLM work; a closed session frees all ----
async def test_barge_ins_stop_synthesis_at_once_and_a_closed_session_frees_it(engines):
    ultravox = engines.ultravox
    saved = ultravox.settings
    # Long replies: every sentence takes Kokoro seconds, so unstopped work would pile up.
    ultravox.settings = dataclasses.replace(saved, max_new_tokens=60, min_new_tokens=60)
    config = server_config()
    try:
        async with running_server(create_app(config, engines), config) as server:
            async with WireClient.connect(ws_url(server)) as client:
                for i in range(6):  # each typed turn interrupts the reply before it
                    mark = time.perf_counter()
                    text = f"Tell me a long story about Paris, part {i}."
                    await client.send(protocol.rtvi("send-text", {"content": text, "options": {}}))
                    await client.wait_for_rtvi("bot-tts-started", timeout=20, after=mark)
                    await asyncio.sleep(0.3)
                    assert _kokoro_threads() <= 2, "interrupted replies are still being spoken"
            left = time.perf_counter()
            await _wait(
                lambda: _kokoro_threads() == 0 and not ultravox.pending_replies,
                2.0,
                lambda: f"{_kokoro_threads()} TTS threads still run after the session closed",
            )
            assert time.perf_counter() - left < 2.0
    finally:
        ultravox.settings = saved


async def test_stopping_a_stream_ends_its_reader_and_its_thread_at_once(engines):
    long_text = " ".join(["This sentence is long enough to keep the model busy a while."] * 12)
    stream = engines.kokoro.stream(long_text, "jm_kumo")
    reader = asyncio.create_task(anext(stream))  # waits for the first piece
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    stream.stop()  # what a barge-in does
    with contextlib.suppress(StopAsyncIteration):
        await asyncio.wait_for(reader, 1.0)  # ends, instead of waiting forever
    await _wait(lambda: _kokoro_threads() == 0, 1.0, lambda: "the TTS thread still runs")
    assert time.perf_counter() - started < 1.5


# -- item 3: one resampler per session -------------------------------------------------------
async def test_many_sample_rates_do_not_grow_memory(engines):
    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            frames = [
                protocol.encode(protocol.AudioFrame(b"\x01\x00" * 10, rate, 1))
                for rate in range(8001, 8001 + 1200)
            ]
            await client.ws.send(frames[0])
            await asyncio.sleep(0.3)
            before = sample().rss_mb
            for frame in frames:
                await client.ws.send(frame)
            await client.ws.ping()
            await asyncio.sleep(0.5)
            grown = sample().rss_mb - before
            assert grown < 60, f"RSS grew {grown:.0f} MB for 1,200 sample rates"
            assert not client.received.rtvi("error"), client.received.rtvi("error")
            (session,) = app.state.airvoice.sessions
            assert session.serializer._resampler[0] == 8001 + 1199  # the last rate only


# -- item 4: half-open connections, oversized heads, a cap per address -----------------------
async def _eof_within(reader, seconds) -> bytes:
    data = b""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        chunk = await asyncio.wait_for(reader.read(65536), deadline - time.perf_counter())
        if not chunk:
            return data
        data += chunk
    raise TimeoutError("the connection is still open")


async def test_unfinished_and_oversized_handshakes_are_closed(engines):
    config = server_config(handshake_timeout_seconds=1.0, max_connections_per_address=8)
    async with running_server(create_app(config, engines), config) as server:
        port = _port(server)
        half_open = []
        for _ in range(8):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
            half_open.append((reader, writer))
        # The ninth from the same address is over the cap: closed at once.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await _eof_within(reader, 1.0) == b""
        writer.close()
        started = time.perf_counter()
        for reader, writer in half_open:
            assert await _eof_within(reader, 3.0) == b""
            writer.close()
        assert time.perf_counter() - started < 3.0
        for head, status in (
            (b"GET /ws?token=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
            (b"GET /ws HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 60_000 + b"\r\n\r\n", b"431"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(head)
            answer = await _eof_within(reader, 3.0)
            assert answer.startswith(b"HTTP/1.1 " + status), answer[:80]
            writer.close()
        async with WireClient.connect(ws_url(server)) as client:  # honest clients still served
            assert client.received.rtvi("bot-ready")
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        for name in ("airvoice_asyncio_tasks", "airvoice_threads", "airvoice_open_connections"):
            assert name in metrics


# -- item 5: a handshake deadline and an idle timeout -----------------------------------------
async def test_silent_sockets_do_not_hold_slots(engines):
    config = server_config(
        max_sessions=2, client_ready_timeout_seconds=1.0, session_idle_minutes=0.03
    )
    async with running_server(create_app(config, engines), config) as server:
        started = time.perf_counter()
        codes = await asyncio.gather(_close_of(ws_url(server)), _close_of(ws_url(server)))
        assert time.perf_counter() - started < 6
        for code, reason in codes:
            assert code == 4408 and "client-ready" in reason
        async with WireClient.connect(ws_url(server)) as client:  # the slots are free again
            await asyncio.wait_for(client.closed.wait(), 6)  # quiet after client-ready: idle
            assert client.ws.close_code == 4408 and "idle" in client.ws.close_reason


# -- item 6: input faster than real time --------------------------------------------------------
async def test_audio_faster_than_real_time_is_dropped_with_one_error(engines, speech16):
    config = server_config(max_input_backlog_seconds=1.0)
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            noise = np.random.default_rng(0).integers(-3000, 3000, 16000 * 60, dtype=np.int16)
            for offset in range(0, len(noise), 320):  # 60 s of audio, as fast as possible
                chunk = noise[offset : offset + 320].astype("<i2").tobytes()
                await client.send(protocol.AudioFrame(chunk, 16000))
            errors = await _errors(client, 1)
            assert len(errors) == 1 and "faster than real time" in errors[0]
            mark = time.perf_counter()
            await client.send(protocol.rtvi("client-message", {"t": "reset", "d": {}}))
            await client.wait_for_rtvi("server-response", timeout=2, after=mark)
        left = time.perf_counter()
        await _wait(lambda: not app.state.airvoice.slots.active, 1.0, lambda: "slot held")
        assert time.perf_counter() - left < 1.0
        dropped = app.state.airvoice.metrics.bad_messages._value.get()
        assert dropped > 2000  # ~59 s of 20 ms frames over the margin, each counted


# -- item 8: no false "server full" -------------------------------------------------------------
async def test_connect_then_close_never_gets_a_false_full(engines):
    config = server_config(max_sessions=1)
    async with running_server(create_app(config, engines), config) as server:
        refused = 0
        for _ in range(40):
            async with websockets.connect(ws_url(server)) as ws:
                with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 0.05)
            if ws.close_code == 1008:
                refused += 1
        assert refused == 0, f"{refused} of 40 clients were told the server is full"


# -- item 9: every bad input answered, and counted ----------------------------------------------
def _message(payload: bytes) -> bytes:
    return protocol._bytes_field(4, protocol._bytes_field(1, payload))


async def test_every_bad_message_is_answered_and_counted(engines):
    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            cases = [
                (
                    protocol.rtvi(
                        "raw-audio",
                        {"base64Audio": base64.b64encode(b"\0\0" * 80).decode(),
                         "sampleRate": 0, "numChannels": 1},
                    ),
                    "0 Hz",
                ),
                (
                    protocol.rtvi(
                        "raw-audio",
                        {"base64Audio": base64.b64encode(b"\0\0" * 80).decode(),
                         "sampleRate": 16000, "numChannels": 0},
                    ),
                    "num_channels=0",
                ),
                (protocol.AudioFrame(b"\0\0" * 80, 16000, 0), "num_channels=0"),
                (b"", "empty"),
                (_message(b"this is not json"), "JSON"),
                (_message(b"[1, 2, 3]"), "JSON list"),
                (_message(b'"a string"'), "JSON str"),
            ]  # fmt: skip
            for count, (case, expected) in enumerate(cases, 1):
                if isinstance(case, bytes):
                    await client.ws.send(case)
                else:
                    await client.send(case)
                errors = await _errors(client, count)
                assert expected in errors[-1], errors[-1]
                await asyncio.sleep(1.05)  # one report per kind and second
            for _ in range(5):  # reported once (rate-limited), counted five times
                await client.ws.send(b"\xff\xfe not protobuf")
            await client.ws.ping()
            await asyncio.sleep(0.2)
            counted = app.state.airvoice.metrics.bad_messages._value.get()
            assert counted == len(cases) + 5
            # The session still works.
            mark = time.perf_counter()
            await client.send(protocol.rtvi("client-message", {"t": "reset", "d": {}}))
            await client.wait_for_rtvi("server-response", timeout=5, after=mark)


# -- item 10: Origin ----------------------------------------------------------------------------
async def test_browser_origins_are_checked(engines):
    config = server_config(allowed_origins=["https://app.example.com"])
    async with running_server(create_app(config, engines), config) as server:
        url = ws_url(server)
        code, reason = await _close_of(url, origin="https://evil.example")
        assert code == 4003 and "origin" in reason
        own = f"http://127.0.0.1:{_port(server)}"
        for origin in (own, "https://app.example.com"):
            async with WireClient.connect(url, origin=origin) as client:
                assert client.received.rtvi("bot-ready")


# -- item 11: the interruption frame only for clients that understand it ------------------------
async def test_interruption_frame_only_for_clients_that_declare_it(engines, speech16):
    config = server_config()
    async with running_server(create_app(config, engines), config) as server:
        async with (
            WireClient.connect(ws_url(server)) as ours,
            WireClient.connect(ws_url(server), ready=False) as official,
        ):
            # What @pipecat-ai/client-js 1.13 sends: its name and version, no features.
            ready = protocol.rtvi(
                "client-ready",
                {"version": "2.0.0",
                 "about": {"library": "@pipecat-ai/client-js", "library_version": "1.13.1"}},
            )  # fmt: skip
            await official.send(ready)
            await official.wait_for_rtvi("bot-ready", timeout=10)

            async def barge_in(client):
                await client.stream_pcm(speech16)
                await client.stream_silence(1.0)
                await client.wait_for_rtvi("bot-started-speaking", timeout=30)
                mark = time.perf_counter()
                await client.stream_pcm(speech16[:16000])
                await client.wait_for_rtvi("bot-interrupted", timeout=10, after=mark)

            await asyncio.gather(barge_in(ours), barge_in(official))
            await asyncio.sleep(0.3)
    assert ours.received.interruptions()
    assert not official.received.interruptions()
    kinds = {type(f).__name__ for _, f in official.received.frames}
    assert kinds <= {"AudioFrame", "MessageFrame"}, kinds  # all the JS client can decode


# -- item 1: a URL is never printed with its token ---------------------------------------------
def test_a_bad_url_is_reported_without_its_token():
    from airvoice.client import VoiceClient
    from airvoice.client.errors import ClientError

    with pytest.raises(ClientError) as info:
        # https:// is a dispatcher URL now; a scheme that is neither is the error.
        VoiceClient("ftp://pod.example/ws?token=s3cret-t0ken&voice=af_heart")
    assert "s3cret-t0ken" not in str(info.value) and "token=***" in str(info.value)
