"""VoiceClient against a real server with the offline models."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from airvoice.client import (
    AuthError,
    ClockedPlayer,
    ConnectError,
    ServerBusyError,
    VoiceClient,
)
from airvoice.server.app import create_app
from airvoice.server.run import running_server
from airvoice.testing.server import TOKEN, offline_server_config, ws_url


async def test_a_question_gets_text_audio_and_latency(engines, speech16, no_network):
    config = offline_server_config()
    async with running_server(create_app(config, engines), config) as server:
        async with VoiceClient(ws_url(server, token=None), TOKEN, reconnect=False) as client:
            texts = []
            client.on("bot_text", texts.append)
            reply = await client.ask(speech16, 16000, timeout=30)
    assert reply.text and reply.text == "".join(texts)
    assert reply.audio.dtype == np.int16 and reply.audio.size > 24000 * 0.2
    assert reply.latency is not None
    assert 0 < reply.latency.user_to_speaker_ms < 10_000
    assert reply.latency.server["turn_end_to_first_audio_ms"] > 0
    assert not no_network


async def _talk(client, pcm16, stop=None):
    """Send int16 audio in real time, 20 ms at a time, until done or ``stop`` is set."""
    for offset in range(0, len(pcm16), 320):
        await client.send_audio(pcm16[offset : offset + 320].astype("<i2").tobytes())
        await asyncio.sleep(0.02)
        if stop is not None and stop.is_set():
            return


async def test_interruption_flushes_playback(engines, speech16):
    config = offline_server_config()
    async with running_server(create_app(config, engines), config) as server:
        player = ClockedPlayer()
        client = VoiceClient(ws_url(server), player=player, duplex="full")
        interrupted = asyncio.Event()
        speaking = asyncio.Event()
        client.on("interrupted", interrupted.set)
        client.on("bot_started_speaking", speaking.set)
        await client.connect()
        try:
            await _talk(client, speech16)
            await _talk(client, np.zeros(16000 * 20, np.int16), stop=speaking)
            assert speaking.is_set(), "the bot never spoke"
            await asyncio.sleep(0.2)
            assert client.buffer.is_playing or client.buffer.buffered_ms > 0
            await _talk(client, speech16, stop=interrupted)  # the user talks over the bot
            await asyncio.wait_for(interrupted.wait(), 5)
            flushed_at = time.perf_counter()
            assert client.buffer.buffered_ms == 0
            await asyncio.sleep(0.3)
            late = [t for t in player.sink.voiced_at if flushed_at + 0.05 < t < flushed_at + 0.3]
            assert late == []  # the old reply stopped at once
        finally:
            await client.close()


async def test_half_duplex_closes_the_mic_while_the_bot_speaks():
    client = VoiceClient("ws://127.0.0.1:9/ws", duplex="half", echo_tail_ms=200)
    assert client._mic_open()
    client.buffer.push(bytes(24000))
    client.buffer.pull(960)  # the bot's audio is playing
    assert not client._mic_open()
    client.buffer.flush()
    assert not client._mic_open()  # the echo tail
    await asyncio.sleep(0.25)
    assert client._mic_open()
    full = VoiceClient("ws://127.0.0.1:9/ws", duplex="full")
    full.buffer.push(bytes(24000))
    full.buffer.pull(960)
    assert full._mic_open()


async def test_a_dropped_socket_reconnects(engines):
    config = offline_server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        client = VoiceClient(ws_url(server), voice="jf_alpha", speed=1.2)
        reconnecting = []
        client.on("reconnecting", reconnecting.append)
        await client.connect()
        try:
            (session,) = app.state.airvoice.sessions
            await session.websocket.close(1012, "service restart")
            deadline = time.perf_counter() + 10
            while client.reconnects < 1:
                assert time.perf_counter() < deadline, "no reconnect"
                await asyncio.sleep(0.05)
            assert reconnecting == [1] and client.connected
            (new_session,) = app.state.airvoice.sessions
            assert new_session is not session
            settings = new_session.built.tts  # the session's settings survived the reconnect
            assert settings.voice == "jf_alpha" and settings.speed == pytest.approx(1.2)
        finally:
            await client.close()


async def test_refusals_are_clear_errors(engines):
    config = offline_server_config(max_sessions=1)
    async with running_server(create_app(config, engines), config) as server:
        with pytest.raises(AuthError, match="token"):
            await VoiceClient(ws_url(server, token="nope"), reconnect=False).connect()
        async with VoiceClient(ws_url(server), reconnect=False):
            with pytest.raises(ServerBusyError, match="full"):
                await VoiceClient(ws_url(server), reconnect=False).connect()
    with pytest.raises(ConnectError, match="cannot reach") as info:
        await VoiceClient("ws://127.0.0.1:9/ws?token=secret-value", open_timeout=2).connect()
    assert "secret-value" not in str(info.value)
    with pytest.raises(Exception, match=r"wss://host/ws.*https://host/connect"):
        VoiceClient("ftp://example.invalid/ws")
    # http(s):// now names a dispatcher: sessions start with its POST /connect.
    assert VoiceClient("http://example.invalid").dispatcher == "http://example.invalid/connect"
