"""/health, /metrics, /, offline start-up, refusing to start, graceful and idle shutdown."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
import websockets
from typer.testing import CliRunner

from airvoice.cli import app as cli_app
from airvoice.engines.ultravox import UltravoxEngine
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url
from airvoice.testing.wire import WireClient


def _http(server) -> str:
    return f"http://127.0.0.1:{bound_port(server)}"


async def test_health_metrics_and_page(engines, speech16):
    config = server_config(max_sessions=1)
    async with running_server(create_app(config, engines), config) as server:
        async with httpx.AsyncClient(base_url=_http(server)) as http:
            health = await http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "ok"
            page = await http.get("/")
            assert page.status_code == 200 and "airvoice" in page.text
            async with WireClient.connect(ws_url(server)) as client:
                full = await http.get("/health")
                assert full.status_code == 503 and "slot" in full.json()["reason"]
                await client.stream_pcm(speech16)
                await client.stream_silence(1.0)
                await client.wait_for_rtvi("bot-started-speaking", timeout=30)
                metrics = (await http.get("/metrics")).text
            assert "airvoice_active_sessions 1.0" in metrics
            assert "airvoice_turns_total 1.0" in metrics
            for name in (
                "airvoice_turn_end_to_first_audio_seconds_count 1.0",
                "airvoice_llm_time_to_first_token_seconds_count 1.0",
                "airvoice_tts_time_to_first_audio_seconds_count 1.0",
            ):
                assert name in metrics


async def test_starts_offline_from_model_files_and_completes_a_turn(engines, speech16, no_network):
    """Air-gap: the app loads every model itself while non-loopback traffic is refused."""
    ultravox: UltravoxEngine = engines.ultravox
    files = ultravox.files
    config = server_config(
        ultravox=str(files.ultravox_dir),
        text_model=str(files.text_model_dir),
        kokoro=str(engines.kokoro.backend.path.parent),
        max_new_tokens=6,
    )
    app = create_app(config)  # no engines given: loaded at start-up
    async with running_server(app, config) as server:
        assert app.state.airvoice.engines is not None
        async with WireClient.connect(ws_url(server)) as client:
            await client.stream_pcm(speech16)
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=30)
            assert client.received.audio()
    assert not no_network


async def test_missing_models_make_health_say_why(tmp_path):
    config = server_config(ultravox=str(tmp_path / "nothing"), kokoro=str(tmp_path / "none"))
    app = create_app(config)
    async with running_server(app, config) as server:
        async with httpx.AsyncClient(base_url=_http(server)) as http:
            health = await http.get("/health")
        assert health.status_code == 503
        assert "missing" in health.json()["reason"]
        async with websockets.connect(ws_url(server)) as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
        assert info.value.rcvd.code == 1013


def test_serve_refuses_to_start_listing_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = CliRunner().invoke(
        cli_app,
        [
            "serve",
            "--ultravox",
            "fixie-ai/ultravox-v0_5-llama-3_2-1b",
            "--kokoro",
            str(tmp_path / "kokoro"),
            "--port",
            "0",
        ],
    )
    assert result.exit_code == 1
    out = result.output
    assert "fixie-ai/ultravox-v0_5-llama-3_2-1b" in out and "kokoro" in out.lower()
    assert "airvoice models prefetch" in out
    assert "Traceback" not in out


async def test_graceful_shutdown_lets_the_turn_finish_then_closes_1001(engines, speech16):
    config = server_config(shutdown_grace_seconds=20)
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)) as client:
            await client.stream_pcm(speech16)
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("bot-started-speaking", timeout=30)
            server.handle_exit(15, None)  # SIGTERM
            await asyncio.wait_for(client.closed.wait(), 25)
            code = client.ws.close_code
            stopped = client.received.rtvi_times("bot-stopped-speaking")
        assert code == 1001
        assert stopped, "the bot was cut off instead of finishing its turn"
        # New sessions are refused while draining / after.
        assert app.state.airvoice.draining
        await asyncio.sleep(0.5)
        assert server.should_exit


async def test_idle_shutdown_exits_when_nobody_connects(engines):
    config = server_config(idle_shutdown_minutes=0.01)  # 0.6 s
    app = create_app(config, engines)
    started = time.perf_counter()
    async with running_server(app, config) as server:
        async with WireClient.connect(ws_url(server)):
            await asyncio.sleep(1.0)  # an open session keeps the server up
            assert not server.should_exit
        deadline = time.perf_counter() + 5
        while not server.should_exit:
            assert time.perf_counter() < deadline, "idle shutdown did not happen"
            await asyncio.sleep(0.05)
    assert time.perf_counter() - started > 1.5


async def test_direct_wss_with_tls_files(engines, tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    config = server_config(ssl_certfile=str(cert), ssl_keyfile=str(key))
    async with running_server(create_app(config, engines), config) as server:
        context = ssl.create_default_context(cafile=str(cert))
        url = ws_url(server).replace("ws://", "wss://")
        async with WireClient.connect(url, ssl=context) as client:
            assert client.received.rtvi("bot-ready")
        with pytest.raises((ssl.SSLError, OSError)):
            async with websockets.connect(url, ssl=ssl.create_default_context()):
                pass  # an untrusted certificate is refused by the client
