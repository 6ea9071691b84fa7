"""The examples run, against the offline models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airvoice.config import ServerConfig
from airvoice.server.run import bound_port, running_server
from airvoice.testing.server import VOICE
from airvoice.testing.wire import WireClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_custom_pipeline_example_completes_a_turn(engines, speech16):
    example = _load("custom_pipeline")
    app = example.make_app(engines, VOICE)
    config = ServerConfig(host="127.0.0.1", port=0)
    async with running_server(app, config) as server:
        url = f"ws://127.0.0.1:{bound_port(server)}/voice"
        async with WireClient.connect(url) as client:
            await client.stream_pcm(speech16)
            await client.stream_silence(3.5)  # Smart Turn v3 decides the turn is over
            await client.wait_for_rtvi("bot-llm-stopped", timeout=30)
            # A reply without a sentence break is spoken only once the LLM is done.
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=60)
            assert client.received.bot_text()
            assert client.received.audio(), repr(client.received.bot_text())
