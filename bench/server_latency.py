"""What the server itself adds to a turn, with instant engines (fixed reply, instant audio).

A real uvicorn server on 127.0.0.1 and real WebSocket clients speaking protobuf frames. Each
client speaks a short question in real time (20 ms frames, then silence). Measured per turn:

- ``server_ms``: from the server's ``user-stopped-speaking`` (the end of the turn, after the
  configured turn-end wait) to the first bot audio frame on the client socket; both arrive on
  the same socket, so this is the server's overhead beyond the turn-end wait;
- ``from_speech_end_ms``: from the last voiced frame sent to the first bot audio frame, minus
  the configured wait (VAD stop + silence timeout); includes VAD's own detection lag.

Baseline in the same run: the WebSocket ping round trip on the same connection.
Output pacing: spacing of bot audio frames against their duration (real time).
Targets: p50 server overhead <= 20 ms at 1 session and <= 60 ms at 8; pacing within 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import soxr

from airvoice.config import ServerConfig
from airvoice.engines.kokoro import KokoroEngine
from airvoice.pipeline import Engines
from airvoice.server.app import create_app
from airvoice.testing.instant import InstantKokoro, InstantUltravox
from airvoice.testing.kokoro import build_kokoro_onnx
from airvoice.testing.wire import WireClient

TOKEN = "bench-token"


def question_audio() -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        kokoro = KokoroEngine(build_kokoro_onnx(Path(tmp)), backend="onnx", device="cpu")
        pcm = kokoro.synthesize("Hello there, how are you?", "jm_kumo").astype(np.float32)
    return np.clip(soxr.resample(pcm, 24000, 16000), -32768, 32767).astype(np.int16)


def last_voiced_seconds(pcm: np.ndarray, rate: int = 16000) -> float:
    """Where speech ends in ``pcm``: the end of the last 20 ms window above -40 dB of peak."""
    window = rate // 50
    frames = pcm[: len(pcm) // window * window].astype(np.float32).reshape(-1, window)
    rms = np.sqrt((frames**2).mean(axis=1))
    voiced = np.nonzero(rms > 0.01 * rms.max())[0]
    return (voiced[-1] + 1) * window / rate


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_session(url, speech, turns, wait_s, results, pacing):
    async with WireClient.connect(url) as client:
        for _ in range(turns):
            mark = time.perf_counter()
            await client.stream_pcm(speech)
            speech_end = mark + last_voiced_seconds(speech)
            await client.stream_silence(wait_s + 0.6)
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=20, after=mark)
            stopped = [t for t in client.received.rtvi_times("user-stopped-speaking") if t > mark]
            audio = [(t, f) for t, f in client.received.audio() if t > mark]
            if not stopped or not audio:
                continue
            first_audio = audio[0][0]
            results.append(
                {
                    "server_ms": 1000 * (first_audio - stopped[0]),
                    "from_speech_end_ms": 1000 * (first_audio - speech_end - wait_s),
                }
            )
            for (t0, f0), (t1, _) in itertools.pairwise(audio):
                pacing.append(1000 * abs((t1 - t0) - len(f0.audio) / 2 / 24000))
        pong = await client.ws.ping()
        started = time.perf_counter()
        await pong
        results.append({"ping_ms": 1000 * (time.perf_counter() - started)})


def bench_config(sessions: int, port: int = 0) -> ServerConfig:
    return ServerConfig(
        host="127.0.0.1",
        port=port,
        token=TOKEN,
        max_sessions=sessions,
        smart_turn=False,
        silence_timeout_seconds=0.3,
        vad_stop_seconds=0.2,
        log_level="warning",
    )


def serve_instant(sessions: int, port: int) -> None:
    """The server process: instant engines, real uvicorn, until killed."""
    from airvoice.server.run import AirvoiceServer, uvicorn_config

    config = bench_config(sessions, port)
    engines = Engines(InstantUltravox(), InstantKokoro(seconds_per_sentence=1.0))
    AirvoiceServer(uvicorn_config(create_app(config, engines), config)).run()


@contextlib.asynccontextmanager
async def server_process(sessions: int):
    """The server in its own process, so that the clients do not share its event loop."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--sessions", str(sessions)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("the benchmark server did not start")
        yield port
    finally:
        process.terminate()
        process.wait(30)


async def run_config(speech, sessions, turns_total):
    config = bench_config(sessions)
    wait_s = config.vad_stop_seconds + config.silence_timeout_seconds
    results, pacing = [], []
    async with server_process(sessions) as port:
        url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
        per_session = max(1, turns_total // sessions)
        await asyncio.gather(
            *(
                one_session(url, speech, per_session, wait_s, results, pacing)
                for _ in range(sessions)
            )
        )
    server_ms = [r["server_ms"] for r in results if "server_ms" in r]
    from_end = [r["from_speech_end_ms"] for r in results if "from_speech_end_ms" in r]
    ping = [r["ping_ms"] for r in results if "ping_ms" in r]
    return {
        "sessions": sessions,
        "turns": len(server_ms),
        "server_overhead_ms": {
            "p50": round(statistics.median(server_ms), 2),
            "p95": round(percentile(server_ms, 0.95), 2),
        },
        "from_speech_end_minus_wait_ms": {
            "p50": round(statistics.median(from_end), 2),
            "p95": round(percentile(from_end, 0.95), 2),
        },
        "baseline_ping_ms": round(statistics.median(ping), 3),
        "pacing_deviation_ms": {
            "p50": round(statistics.median(pacing), 2),
            "p95": round(percentile(pacing, 0.95), 2),
            "max": round(max(pacing), 2),
        },
    }


async def main_async(args):
    speech = question_audio()
    report = {"benchmark": "server_latency", "configurations": []}
    for sessions, target in ((1, 20.0), (8, 60.0)):
        result = await run_config(speech, sessions, args.turns)
        result["target_p50_ms"] = target
        result["meets_target"] = result["server_overhead_ms"]["p50"] <= target and (
            result["pacing_deviation_ms"]["p95"] <= 5.0
        )
        report["configurations"].append(result)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=50, help="turns per configuration")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_instant(args.sessions, args.serve)
        return 0
    started = time.perf_counter()
    report = asyncio.run(main_async(args))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
