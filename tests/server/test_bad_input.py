"""Bad input on /ws: clear errors, the server keeps serving, nothing leaks."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
import websockets

from airvoice import protocol
from airvoice.server.app import create_app
from airvoice.server.run import running_server
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url
from airvoice.testing.wire import WireClient


async def _errors(client, count, timeout=5.0):
    deadline = time.perf_counter() + timeout
    while len(client.received.rtvi("error")) < count:
        assert time.perf_counter() < deadline, client.received.rtvi()
        await asyncio.sleep(0.02)
    return [e["data"]["error"] for e in client.received.rtvi("error")]


async def test_malformed_messages_get_clear_errors_and_the_session_survives(engines, speech16):
    config = server_config()
    app = create_app(config, engines)
    baseline = len(asyncio.all_tasks())
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await client.ws.send(b"\xff\xfe garbage that is not protobuf \x00\x01")
            assert "not a valid protobuf Frame" in (await _errors(client, 1))[-1]
            await asyncio.sleep(1.05)  # reports of one kind are rate-limited to 1/s
            truncated = protocol.encode(protocol.AudioFrame(b"\x00\x01" * 160, 16000))[:-7]
            await client.ws.send(truncated)
            assert "not a valid protobuf Frame" in (await _errors(client, 2))[-1]
            await client.ws.send("hello, I am a text frame")
            assert "text WebSocket messages" in (await _errors(client, 3))[-1]
            await client.send(protocol.AudioFrame(b"\x00" * 321, 16000))
            assert "not whole 16-bit samples" in (await _errors(client, 4))[-1]
            await client.send(protocol.AudioFrame(b"\x00\x00" * 20, 1000))
            assert "1000 Hz cannot be used" in (await _errors(client, 5))[-1]
            # The same session still hears speech, even sent at 8 kHz (resampled).
            speech8 = speech16[::2]
            await client.stream_pcm(speech8, rate=8000)
            await client.stream_silence(1.0, rate=8000)
            await client.wait_for_rtvi("bot-llm-stopped", timeout=30)
            assert client.received.rtvi("user-stopped-speaking")
        assert app.state.airvoice.metrics.bad_messages._value.get() >= 5
    await asyncio.sleep(0.2)
    assert len(asyncio.all_tasks()) <= baseline  # every session task is gone


async def test_a_10_mb_message_closes_that_session_only(engines, speech16):
    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as other:
            async with websockets.connect(ws_url(server), max_size=None) as big:
                await big.send(b"\x00" * (10 * 1024 * 1024))
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await asyncio.wait_for(big.recv(), 10)
                assert info.value.rcvd.code == 1009  # message too big
            await other.stream_pcm(speech16)
            await other.stream_silence(1.0)
            await other.wait_for_rtvi("bot-llm-stopped", timeout=30)
        deadline = time.perf_counter() + 2
        while app.state.airvoice.slots.active:
            assert time.perf_counter() < deadline
            await asyncio.sleep(0.02)


async def test_stereo_48k_audio_is_mixed_and_resampled(engines, speech16):
    config = server_config()
    async with running_server(create_app(config, engines), config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            import soxr

            speech48 = soxr.resample(speech16.astype(np.float32), 16000, 48000)
            stereo = np.repeat(np.clip(speech48, -32768, 32767).astype(np.int16), 2)
            step = 960 * 2  # 20 ms of 48 kHz stereo samples
            start = time.perf_counter()
            for i, offset in enumerate(range(0, len(stereo), step)):
                chunk = stereo[offset : offset + step].astype("<i2").tobytes()
                await client.send(protocol.AudioFrame(chunk, 48000, 2))
                await asyncio.sleep(max(0, start + (i + 1) * 0.02 - time.perf_counter()))
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("user-stopped-speaking", timeout=10)
            assert not client.received.rtvi("error")
