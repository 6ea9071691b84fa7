"""Soak: honest sessions talking for a while beside a hostile one; does the server come back?

A real server process (offline models: tiny Ultravox, real int8 Kokoro) on 127.0.0.1. After a
warm-up (the same mix for ``--warmup`` seconds), ``--sessions`` honest clients talk for
``--minutes``: each speaks a question in real time, waits for the answer, barges in on every
third answer and types every fourth turn. Meanwhile a hostile client changes sample rate
every frame, floods garbage and 1 MB messages, opens half-finished handshakes, presents
near-miss tokens, and a prober connects and closes one socket at a time (there is always a
free slot, so any 1008 is false).

Sampled over time: the server's RSS, threads, file descriptors (``/proc``) and asyncio tasks
(``/metrics``). Printed as JSON, against the baseline after warm-up in the same run. The
warm-up (90 s by default) is the same mix: measured in rounds of 40 s, the server's RSS after
each round rose 957 -> 985 MB over the first two, then 985 -> 995 over the next six (caches,
ONNX Runtime's arenas and the malloc arenas reaching their working size). A warm-up of 30 s
left the baseline below that, and a 10-minute soak then ended at 1.103x it. Targets:

- RSS after the soak within 10 % of RSS after warm-up;
- threads, descriptors and tasks back to the warm-up baseline;
- no false refusal, every honest turn answered;
- the server log holds no token, and no more than a few KB per flooded MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

from airvoice import protocol
from airvoice.testing.procstat import sample
from airvoice.testing.serve import offline_server_process
from airvoice.testing.server import TOKEN
from airvoice.testing.wire import WireClient

QUESTIONS = ["What is the weather like in Paris today?", "Tell me a short story."]


def question_audio(root: Path) -> np.ndarray:
    import soxr

    from airvoice.engines.kokoro import KokoroEngine
    from airvoice.testing.kokoro import build_kokoro_onnx
    from airvoice.testing.server import VOICE

    kokoro = KokoroEngine(build_kokoro_onnx(root / "kokoro"), backend="onnx", device="cpu")
    pcm = kokoro.synthesize(QUESTIONS[0], VOICE).astype(np.float32)
    return np.clip(soxr.resample(pcm, 24000, 16000), -32768, 32767).astype(np.int16)


class Stats:
    def __init__(self) -> None:
        self.turns_sent = 0
        self.turns_answered = 0
        self.barge_ins = 0
        self.typed = 0
        self.session_errors: list[str] = []
        self.probes = 0
        self.false_refusals = 0
        self.hostile: dict[str, int] = {}

    def count(self, key: str, n: int = 1) -> None:
        self.hostile[key] = self.hostile.get(key, 0) + n


async def honest_session(url: str, speech: np.ndarray, until: float, stats: Stats, seed: int):
    rng = random.Random(seed)
    async with WireClient.connect(url) as client:
        turn = 0
        while time.monotonic() < until:
            turn += 1
            mark = time.perf_counter()
            stats.turns_sent += 1
            if turn % 4 == 0:
                stats.typed += 1
                text = rng.choice(QUESTIONS)
                await client.send(protocol.rtvi("send-text", {"content": text, "options": {}}))
            else:
                await client.stream_pcm(speech)
                await client.stream_silence(1.0)
            try:
                await client.wait_for_rtvi("bot-llm-stopped", timeout=60, after=mark)
            except TimeoutError:
                stats.session_errors.append(f"turn {turn}: no answer within 60 s")
                continue
            stats.turns_answered += 1
            if turn % 3 == 0:  # barge in on the answer while it is spoken
                try:
                    await client.wait_for_rtvi("bot-started-speaking", timeout=10, after=mark)
                except TimeoutError:
                    continue  # nothing to barge in on: the answer was silent
                stats.barge_ins += 1
                stats.turns_sent += 1
                barge = time.perf_counter()
                await client.stream_pcm(speech[: len(speech) // 2])
                await client.stream_silence(1.0)
                try:
                    await client.wait_for_rtvi("bot-llm-stopped", timeout=60, after=barge)
                    stats.turns_answered += 1
                except TimeoutError:
                    stats.session_errors.append(f"barge-in {turn}: no answer within 60 s")
            await client.stream_silence(0.5)
        if client.closed.is_set():
            stats.session_errors.append(f"closed by the server: {client.ws.close_code}")


async def hostile_session(port: int, url: str, until: float, stats: Stats) -> None:
    rng = random.Random(1)
    near_miss = TOKEN[:-1] + ("x" if TOKEN[-1] != "x" else "y")
    while time.monotonic() < until:
        # Near-miss tokens and the right one in the query (never to be logged).
        for token in (near_miss, TOKEN + "0", ""):
            with contextlib.suppress(Exception):
                async with websockets.connect(url.replace(TOKEN, token)) as ws:
                    await asyncio.wait_for(ws.recv(), 2)
            stats.count("bad_tokens")
        with contextlib.suppress(Exception):
            async with WireClient.connect(url) as client:
                for _ in range(200):  # a new rate every 20-byte frame
                    rate = rng.randrange(8000, 48001)
                    await client.send(protocol.AudioFrame(b"\x01\x00" * 10, rate))
                stats.count("rate_changes", 200)
                for _ in range(50):
                    await client.ws.send(rng.randbytes(rng.randrange(1, 300)))
                stats.count("garbage", 50)
                big = protocol.rtvi("no-such-type", {"blob": "x" * (1_000_000 - 200)})
                for _ in range(3):
                    await client.send(big)
                stats.count("megabyte_messages", 3)
                await client.ws.ping()
        # Half-open handshakes that never finish.
        writers = []
        for _ in range(5):
            with contextlib.suppress(OSError):
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                writers.append(writer)
        stats.count("half_open", len(writers))
        await asyncio.sleep(2.0)
        for writer in writers:
            writer.close()


async def prober(url: str, until: float, stats: Stats) -> None:
    """Connect, then close, one at a time: a slot is always free, so 1008 is a false 'full'."""
    while time.monotonic() < until:
        with contextlib.suppress(OSError, websockets.InvalidHandshake):
            async with websockets.connect(url) as ws:
                with contextlib.suppress(asyncio.TimeoutError, websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 0.05)
                stats.probes += 1
                if ws.close_code == 1008:
                    stats.false_refusals += 1
        await asyncio.sleep(0.05)


async def tasks_of(port: int) -> int | None:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    found = re.search(r"^airvoice_asyncio_tasks (\S+)", text, re.M)
    return int(float(found.group(1))) if found else None


async def settled(port: int, pid: int, baseline: dict[str, Any], seconds: float) -> dict:
    """Sample until threads, fds and tasks are back to baseline, or ``seconds`` pass (after
    3 s in any case: the server gives memory back a second after the last session ends)."""
    await asyncio.sleep(3)
    deadline = time.monotonic() + seconds
    while True:
        now = {**sample(pid).as_dict(), "tasks": await tasks_of(port)}
        back = all(now[k] <= baseline[k] for k in ("threads", "fds", "tasks"))
        if back or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.5)


async def soak(
    minutes: float,
    sessions: int,
    root: Path,
    log_file: Path,
    warmup_seconds: float,
    log_level: str = "info",
) -> dict[str, Any]:
    speech = question_audio(root)
    stats = Stats()
    timeline: list[dict[str, Any]] = []
    with offline_server_process(
        root,
        log_file,
        max_new_tokens=24,
        max_sessions=sessions + 2,  # the hostile client and the prober never make it full
        max_connections_per_address=64,
        log_level=log_level,
    ) as (port, pid):
        url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
        start = time.monotonic()

        async def workload(seconds: float, stats: Stats, sample_every: float | None) -> None:
            until = time.monotonic() + seconds

            async def sampler() -> None:
                while sample_every and time.monotonic() < until:
                    now = {"t": round(time.monotonic() - start, 1), **sample(pid).as_dict()}
                    timeline.append(now)
                    await asyncio.sleep(sample_every)

            await asyncio.gather(
                sampler(),
                hostile_session(port, url, until, stats),
                prober(url, until, stats),
                *(honest_session(url, speech, until, stats, i) for i in range(sessions)),
            )

        # Warm-up: the same mix, so that caches, pools and arenas reach their working size.
        await workload(warmup_seconds, Stats(), None)
        baseline = await settled(port, pid, {"threads": 0, "fds": 0, "tasks": 0}, 0)
        await workload(60 * minutes, stats, max(1.0, 60 * minutes / 30))
        after = await settled(port, pid, baseline, 20)
        peak = max((s["rss_mb"] for s in timeline), default=after["rss_mb"])
    log_text = log_file.read_text(encoding="utf-8", errors="replace")
    near_miss = TOKEN[:-1]
    rss_ratio = after["rss_mb"] / baseline["rss_mb"]
    result = {
        "benchmark": "soak",
        "minutes": minutes,
        "sessions": sessions,
        "warmup_seconds": warmup_seconds,
        "baseline_after_warmup": baseline,
        "after_soak": after,
        "rss_peak_mb": peak,
        "rss_after_over_warmup": round(rss_ratio, 3),
        "turns_sent": stats.turns_sent,
        "turns_answered": stats.turns_answered,
        "barge_ins": stats.barge_ins,
        "typed_turns": stats.typed,
        "session_errors": stats.session_errors,
        "probes": stats.probes,
        "false_refusals": stats.false_refusals,
        "hostile": stats.hostile,
        "log_bytes": len(log_text.encode()),
        "log_lines_with_token": sum(1 for line in log_text.splitlines() if near_miss in line),
        "timeline": timeline,
    }
    result["meets_target"] = (
        rss_ratio <= 1.10
        and all(after[k] <= baseline[k] for k in ("threads", "fds", "tasks"))
        and stats.false_refusals == 0
        and stats.turns_answered == stats.turns_sent
        and not stats.session_errors
        and result["log_lines_with_token"] == 0
    )
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=90.0, help="seconds of warm-up")
    parser.add_argument("--root", type=Path, help="where the offline models are built")
    parser.add_argument("--log", type=Path, help="the server's log file")
    parser.add_argument("--log-level", default="info", help="the server's (debug to diagnose)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or Path(tmp) / "models"
        log_file = args.log or Path(tmp) / "server.log"
        result = asyncio.run(
            soak(args.minutes, args.sessions, root, log_file, args.warmup, args.log_level)
        )
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["meets_target"] else 1)
