"""The server suite's full turn, barge-in and disconnect tests, with ``--engine vllm``.

The test functions are the server suite's own; here ``engines`` (see this folder's conftest)
serves the tiny Ultravox with the vLLM engine and the real Kokoro.
"""

from __future__ import annotations

from airvoice.server.app import create_app
from airvoice.server.run import running_server
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url
from airvoice.testing.wire import WireClient
from tests.server.test_sessions import (
    test_barge_in_interrupts_the_bot,
    test_disconnect_mid_reply_frees_the_slot,
)
from tests.server.test_turn import test_full_turn

__all__ = [
    "test_barge_in_interrupts_the_bot",
    "test_disconnect_mid_reply_frees_the_slot",
    "test_full_turn",
]


async def test_health_and_metrics_show_the_engine_load(engines, speech16):
    import httpx

    app = create_app(server_config(), engines)
    async with running_server(app, server_config()) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await client.stream_pcm(speech16)
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=30)
        base = ws_url(server, token=None).replace("ws://", "http://").removesuffix("/ws")
        async with httpx.AsyncClient() as http:
            health = (await http.get(f"{base}/health")).json()
            metrics = (await http.get(f"{base}/metrics")).text
    engine = health["engine"]
    assert engine["name"] == "vllm"
    assert 0 <= engine["kv_cache_usage"] <= 1
    assert engine["running"] == 0 and engine["waiting"] == 0
    assert 0 <= engine["prefix_cache_hit_rate"] <= 1
    assert "airvoice_engine_kv_cache_usage" in metrics
    assert "airvoice_engine_prefix_cache_hit_rate" in metrics
    assert "airvoice_engine_running_requests 0.0" in metrics
