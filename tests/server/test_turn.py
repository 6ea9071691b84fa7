"""A full spoken turn over a real WebSocket, with the offline models."""

from __future__ import annotations

from airvoice.engines.ultravox.conversation import AssistantTurn, UserTurn
from airvoice.server.app import create_app
from airvoice.server.run import running_server
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url
from airvoice.testing.wire import WireClient


async def test_full_turn(engines, speech16, no_network):
    app = create_app(server_config(), engines)
    async with running_server(app, server_config()) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await client.stream_pcm(speech16)
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=30)
            sessions = list(app.state.airvoice.sessions)
            assert len(sessions) == 1
            turns = list(sessions[0].conversation.turns)
            received = client.received
    assert received.rtvi("user-started-speaking") and received.rtvi("user-stopped-speaking")
    assert received.bot_text()
    audio = received.audio()
    assert audio and all(f.sample_rate == 24000 and len(f.audio) % 2 == 0 for _, f in audio)
    assert sum(len(f.audio) for _, f in audio) / 2 / 24000 > 0.2  # the bot said something
    assert isinstance(turns[0], UserTurn) and turns[0].num_tokens > 10
    assert isinstance(turns[1], AssistantTurn)
    latency = received.rtvi("server-message")
    assert latency and latency[0]["data"]["type"] == "turn-latency"
    assert not no_network
