"""Barge-in, isolation, disconnects, auth and the slot limit, over real WebSockets."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets

from airvoice.engines.ultravox.conversation import UserTurn
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.server.slots import DEFAULT_SESSIONS, session_limit
from airvoice.testing.server import TOKEN, ws_url
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.wire import WireClient


async def _speak(client, speech16, silence=1.0):
    await client.stream_pcm(speech16)
    await client.stream_silence(silence)


async def test_barge_in_interrupts_the_bot(engines, speech16):
    config = server_config()
    async with running_server(create_app(config, engines), config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await _speak(client, speech16)
            started = await client.wait_for_rtvi("bot-started-speaking", timeout=30)
            assert started
            barge_at = time.perf_counter()
            speaking = asyncio.create_task(_speak(client, speech16, silence=0.2))
            deadline = time.perf_counter() + 5
            while not [t for t in client.received.interruptions() if t > barge_at]:
                assert time.perf_counter() < deadline, "no interruption frame after barge-in"
                await asyncio.sleep(0.02)
            interrupted_at = next(t for t in client.received.interruptions() if t > barge_at)
            await speaking
            received = client.received
    assert interrupted_at - barge_at < 1.5
    # After the interruption the old reply's audio stops: nothing until the next reply starts.
    next_reply = [t for t in received.rtvi_times("bot-llm-started") if t > interrupted_at]
    window_end = next_reply[0] if next_reply else time.perf_counter()
    late_audio = [t for t, _ in received.audio() if interrupted_at + 0.15 < t < window_end]
    assert late_audio == []
    assert received.rtvi("bot-interrupted") or received.rtvi("user-started-speaking")


async def test_two_sessions_stay_isolated(engines, speech16):
    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with (
            WireClient.connect(ws_url(server)) as a,
            WireClient.connect(ws_url(server)) as b,
        ):
            await asyncio.gather(
                _speak(a, speech16), _speak(b, speech16[: len(speech16) // 2 + 8000])
            )
            await asyncio.gather(
                a.wait_for_rtvi("bot-llm-stopped", timeout=30),
                b.wait_for_rtvi("bot-llm-stopped", timeout=30),
            )
            sessions = list(app.state.airvoice.sessions)
            assert len(sessions) == 2
            turns = [list(s.conversation.turns) for s in sessions]
    users = [[t for t in ts if isinstance(t, UserTurn)] for ts in turns]
    assert [len(u) for u in users] == [1, 1]
    assert users[0][0].key != users[1][0].key
    assert sessions[0].conversation is not sessions[1].conversation
    lengths = sorted(u[0].num_tokens for u in users)
    assert lengths[0] < lengths[1]  # each heard its own audio (the second was shorter)


async def _close_code(url, **kwargs):
    async with websockets.connect(url, **kwargs) as ws:
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    return info.value.rcvd.code, info.value.rcvd.reason


async def test_missing_and_wrong_tokens_are_refused(engines, caplog):
    config = server_config()
    async with running_server(create_app(config, engines), config) as server:
        assert (await _close_code(ws_url(server, token=None)))[0] == 4001
        code, reason = await _close_code(ws_url(server, token="wrong-token"))
        assert code == 4001 and "token" in reason
        # The three accepted ways: query (above), a Bearer header, a subprotocol.
        async with WireClient.connect(
            ws_url(server, token=None), additional_headers={"Authorization": f"Bearer {TOKEN}"}
        ) as client:
            assert client.received.rtvi("bot-ready")
        async with WireClient.connect(
            ws_url(server, token=None), subprotocols=["airvoice", f"token.{TOKEN}"]
        ) as client:
            assert client.ws.subprotocol == "airvoice"
    assert TOKEN not in caplog.text


async def test_full_server_answers_1008(engines):
    config = server_config(max_sessions=1)
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)):
            code, reason = await _close_code(ws_url(server))
            assert code == 1008 and "full" in reason
        deadline = time.perf_counter() + 2
        while app.state.airvoice.slots.active:
            assert time.perf_counter() < deadline
            await asyncio.sleep(0.02)
        async with WireClient.connect(ws_url(server)) as client:  # the slot is free again
            assert client.received.rtvi("bot-ready")


async def test_bad_session_settings_are_refused(engines):
    config = server_config()
    async with running_server(create_app(config, engines), config) as server:
        code, reason = await _close_code(ws_url(server, voice="no_such_voice"))
        assert code == 4400 and "no_such_voice" in reason
        code, reason = await _close_code(ws_url(server, speed="9"))
        assert code == 4400 and "speed" in reason


async def test_disconnect_mid_reply_frees_the_slot(engines, speech16):
    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await _speak(client, speech16)
            await client.wait_for_rtvi("bot-llm-started", timeout=30)
        left = time.perf_counter()
        while app.state.airvoice.slots.active or engines.ultravox.pending_replies:
            assert time.perf_counter() - left < 1.0, "slot not freed within 1 s"
            await asyncio.sleep(0.01)
        while app.state.airvoice.sessions:  # the teardown may finish after the slot is free
            assert time.perf_counter() - left < 5.0, "session not torn down within 5 s"
            await asyncio.sleep(0.01)


async def test_typed_text_turn_and_reset(engines):
    from airvoice import protocol
    from airvoice.engines.ultravox.conversation import UserTextTurn

    config = server_config()
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await client.send(
                protocol.rtvi(
                    "send-text",
                    {"content": "What time is it?", "options": {"run_immediately": True}},
                )
            )
            await client.wait_for_rtvi("bot-llm-stopped", timeout=20)
            (session,) = app.state.airvoice.sessions
            turns = list(session.conversation.turns)
            assert isinstance(turns[0], UserTextTurn) and turns[0].text == "What time is it?"
            assert client.received.bot_text()
            mark = time.perf_counter()
            await client.send(protocol.rtvi("client-message", {"t": "reset", "d": {}}))
            response = await client.wait_for_rtvi("server-response", timeout=5, after=mark)
            assert response["data"]["d"] == {"reset": True}
            assert session.conversation.turns == []
            await client.send(protocol.rtvi("client-message", {"t": "dance", "d": {}}))
            error = await client.wait_for_rtvi("error-response", timeout=5)
            assert "dance" in error["data"]["error"]


def test_the_session_limit_follows_the_engines_capacity_unless_set(caplog):
    vllm = {"name": "vllm", "kv_cache_tokens": 150_000, "session_capacity": 18}
    torch = {"name": "torch", "kv_cache_tokens": None, "session_capacity": None}
    assert session_limit(None, vllm) == 18
    assert session_limit(None, torch) == DEFAULT_SESSIONS == 4
    assert session_limit(12, vllm) == 12 and not caplog.records
    assert session_limit(40, torch) == 40 and not caplog.records  # no capacity to pass
    # Above the KV capacity the setting is kept, and the log says what that costs and what to do.
    assert session_limit(40, vllm) == 40
    (warning,) = caplog.records
    assert warning.levelname == "WARNING"
    assert "18 conversations" in warning.message and "Lower max_sessions" in warning.message


async def test_a_torch_engine_server_takes_four_sessions_unless_told(engines):
    config = server_config(max_sessions=None)
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bound_port(server)}") as http:
            health = (await http.get("/health")).json()
    assert health["max_sessions"] == health["free_sessions"] == DEFAULT_SESSIONS
    assert health["engine"]["session_capacity"] is None
