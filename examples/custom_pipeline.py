"""Embed airvoice's voice pipeline in your own Pipecat + FastAPI app.

`build_pipeline` gives you the whole airvoice turn (Silero VAD + Smart Turn v3, Ultravox,
Kokoro) over any Pipecat transport; you keep your own routes, auth and observers.

    python examples/custom_pipeline.py --ultravox fixie-ai/ultravox-v0_5-llama-3_2-1b \
        --kokoro hexgrad/Kokoro-82M            # weights from the local HF cache
    python examples/custom_pipeline.py --offline-demo   # tiny offline models, no GPU

Then talk to it: `airvoice talk ws://127.0.0.1:8765/voice`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI, WebSocket
from pipecat.pipeline.worker import PipelineWorker
from pipecat.serializers.protobuf import ProtobufFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from airvoice.pipeline import Engines, SessionSettings, build_pipeline


def make_app(engines: Engines, voice: str = "af_heart") -> FastAPI:
    """Your app: one route that runs an airvoice pipeline per connection."""
    app = FastAPI()

    @app.websocket("/voice")
    async def voice_session(websocket: WebSocket) -> None:
        await websocket.accept()
        transport = FastAPIWebsocketTransport(
            websocket,
            FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                serializer=ProtobufFrameSerializer(),
            ),
        )
        settings = SessionSettings(voice=voice, system_prompt="You are a cheerful concierge.")
        voice_pipeline = build_pipeline(settings, transport, engines)
        worker = PipelineWorker(voice_pipeline.pipeline, params=voice_pipeline.params)

        @transport.event_handler("on_client_disconnected")
        async def _left(*_: object) -> None:
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        await runner.run()

    return app


def load_engines(args: argparse.Namespace) -> tuple[Engines, str]:
    if args.offline_demo:
        from airvoice.testing.server import VOICE, build_offline_engines

        return build_offline_engines(Path(tempfile.mkdtemp(prefix="airvoice-example-"))), VOICE
    from airvoice.config import ServerConfig
    from airvoice.server.engines import load_engines as load

    return load(ServerConfig(ultravox=args.ultravox, kokoro=args.kokoro)), args.voice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ultravox", default="fixie-ai/ultravox-v0_5-llama-3_2-1b")
    parser.add_argument("--kokoro", default="hexgrad/Kokoro-82M")
    parser.add_argument("--voice", default="af_heart")
    parser.add_argument("--offline-demo", action="store_true")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    engines, voice = load_engines(args)
    uvicorn.run(make_app(engines, voice), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
