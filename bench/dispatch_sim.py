"""Sessions through the dispatcher: Poisson arrivals against K replicas of S slots each.

Real parts on 127.0.0.1: K airvoice servers with instant engines (each in its own process),
the ``airvoice dispatch`` CLI in its own process, and real clients that do what Pipecat's
client does: ``POST /connect``, then open the named WebSocket with the signed token, say
client-ready, wait for bot-ready, hold the session for its (exponential, time-scaled) length,
hang up. Two loads: below capacity and above it.

Measured per load: sessions refused by the dispatcher (503) and of those how many came while
the pool had a free slot (a dispatcher mistake); sessions a replica refused after dispatch
(1008: the dispatcher overbooked it); the most sessions seen at once on each replica (from the
clients' own start/end times) against its slots; slot utilisation per replica; and the
``POST /connect`` round trip p50/p99 (what dispatch adds before the session opens). Baseline in
the same run: opening a session directly on a replica (WebSocket + bot-ready), p50/p99.
Targets: below capacity nothing refused, no replica above its slots; dispatch p99 <= 10 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import httpx
import websockets

from airvoice import protocol
from airvoice.testing.replicas import (
    SECRET,
    TOKEN,
    free_port,
    start_replica_process,
    wait_ready,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Outcome:
    arrived: float
    replica: str | None = None
    started: float | None = None
    ended: float | None = None
    refused_by: str | None = None  # "dispatcher" or "replica"
    failed: str | None = None  # opened neither nor refused (e.g. too slow under CPU load)
    free_at_refusal: int = 0
    connect_ms: float | None = None
    dispatcher_ms: float | None = None  # the dispatcher's own time (its Server-Timing)


@dataclass
class Pool:
    """What the clients know of the pool: sessions per replica (by port) that are live or
    ended less than ``lag`` seconds ago (a replica frees a slot, and the dispatcher hears of
    it, a poll or so after the client hangs up)."""

    slots: int
    lag: float
    live: dict[str, int] = field(default_factory=dict)
    recently_ended: list[tuple[float, str]] = field(default_factory=list)

    def end(self, port: str) -> None:
        self.live[port] -= 1
        self.recently_ended.append((time.perf_counter(), port))

    def free(self) -> int:
        cutoff = time.perf_counter() - self.lag
        self.recently_ended = [(t, p) for t, p in self.recently_ended if t > cutoff]
        busy = dict(self.live)
        for _, port in self.recently_ended:
            busy[port] += 1
        return sum(max(0, self.slots - n) for n in busy.values())


async def open_session(ws_url: str, token: str) -> websockets.ClientConnection:
    ws = await websockets.connect(f"{ws_url}?token={token}", max_size=None)
    await ws.send(protocol.encode(protocol.client_ready("dispatch-sim")))
    async with asyncio.timeout(10):
        while True:
            message = await ws.recv()
            is_ready = isinstance(message, bytes) and (
                protocol.rtvi_type(protocol.decode(message)) == "bot-ready"
            )
            if is_ready:
                return ws


async def one_session(
    http: httpx.AsyncClient, dispatcher: str, hold: float, pool: Pool, out: Outcome
) -> None:
    sent = time.perf_counter()
    response = await http.post(
        f"{dispatcher}/connect", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    out.connect_ms = 1000 * (time.perf_counter() - sent)
    timing = response.headers.get("server-timing", "")
    if "dur=" in timing:
        out.dispatcher_ms = float(timing.split("dur=", 1)[1])
    if response.status_code == 503:
        out.refused_by, out.free_at_refusal = "dispatcher", pool.free()
        return
    response.raise_for_status()
    body = response.json()
    port = body["ws_url"].split(":")[2].split("/")[0]
    out.replica = port
    # From the dispatcher's answer the slot is this client's (the dispatcher reserved it), so
    # the clients' view counts it from here, not from bot-ready.
    pool.live[port] = pool.live.get(port, 0) + 1
    try:
        try:
            ws = await open_session(body["ws_url"], body["token"])
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                out.refused_by, out.free_at_refusal = "replica", pool.free()
            else:
                out.failed = f"closed {exc.rcvd.code if exc.rcvd else None}"
            return
        except (TimeoutError, OSError) as exc:
            out.failed = type(exc).__name__
            return
        out.started = time.perf_counter()
        try:
            await asyncio.sleep(hold)
        finally:
            out.ended = time.perf_counter()
            await ws.close()
    finally:
        pool.end(port)


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = current = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


async def run_load(dispatcher: str, ports: list[str], args: argparse.Namespace, rho: float):
    rng = random.Random(args.seed)
    capacity = args.replicas * args.slots
    rate = rho * capacity / args.mean_seconds  # arrivals per second
    pool = Pool(args.slots, args.poll_interval + 1.0, {p: 0 for p in ports})
    outcomes: list[Outcome] = []
    tasks = []
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(args.sessions):
            await asyncio.sleep(rng.expovariate(rate))
            out = Outcome(arrived=time.perf_counter())
            outcomes.append(out)
            hold = rng.expovariate(1 / args.mean_seconds)
            tasks.append(asyncio.create_task(one_session(http, dispatcher, hold, pool, out)))
        await asyncio.gather(*tasks)
    finished = time.perf_counter()
    span = finished - started
    per_replica = {}
    for port in ports:
        intervals = [
            (o.started, o.ended)
            for o in outcomes
            if o.replica == port and o.started is not None and o.ended is not None
        ]
        busy = sum(e - s for s, e in intervals)
        per_replica[port] = {
            "sessions": len(intervals),
            "max_at_once": max_overlap(intervals),
            "utilisation": round(busy / (args.slots * span), 3),
        }
    connect = [o.connect_ms for o in outcomes if o.connect_ms is not None]
    inside = [o.dispatcher_ms for o in outcomes if o.dispatcher_ms is not None]
    by_dispatcher = [o for o in outcomes if o.refused_by == "dispatcher"]
    return {
        "offered_load": rho,
        "arrivals_per_second": round(rate, 2),
        "sessions": len(outcomes),
        "refused_by_dispatcher": len(by_dispatcher),
        "refused_while_a_slot_was_free": sum(1 for o in by_dispatcher if o.free_at_refusal > 0),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "refused_by_replica_after_dispatch": sum(1 for o in outcomes if o.refused_by == "replica"),
        "failed_to_open": sum(1 for o in outcomes if o.failed),
        "replicas": list(per_replica.values()),
        "max_at_once_over_slots": max(r["max_at_once"] for r in per_replica.values()) > args.slots,
        "dispatch_ms": {
            "p50": round(statistics.median(connect), 2),
            "p99": round(percentile(connect, 0.99), 2),
        },
        "dispatcher_own_ms": {
            "p50": round(statistics.median(inside), 3) if inside else None,
            "p99": round(percentile(inside, 0.99), 3) if inside else None,
        },
        "seconds": round(span, 1),
    }


async def direct_baseline(urls: list[str], count: int) -> dict[str, float]:
    """Opening a session straight on a replica with the deploy token (no dispatcher)."""
    times = []
    print("baseline: direct sessions...", file=sys.stderr)
    for i in range(count):
        ws_url = "ws" + urls[i % len(urls)].removeprefix("http") + "/ws"
        sent = time.perf_counter()
        ws = await open_session(ws_url, TOKEN)
        times.append(1000 * (time.perf_counter() - sent))
        await ws.close()
        await asyncio.sleep(0.3)  # let the slot come back
    return {"p50": round(statistics.median(times), 2), "p99": round(percentile(times, 0.99), 2)}


@contextlib.contextmanager
def dispatcher_process(urls: list[str], poll_interval: float):
    port = free_port()
    command = [sys.executable, "-m", "airvoice.cli", "dispatch", "--port", str(port)]
    command += ["--token", TOKEN, "--secret", SECRET, "--log-level", "warning"]
    command += ["--poll-interval", str(poll_interval)]
    for url in urls:
        command += ["--replica", url]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        try:
            yield wait_for_dispatcher(process, log, f"http://127.0.0.1:{port}")
        finally:
            process.terminate()
            process.wait(30)


def wait_for_dispatcher(process: subprocess.Popen, log, base: str) -> str:
    deadline = time.monotonic() + 60
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(base + "/health", timeout=1).status_code in (200, 503):
                return base
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"the dispatcher did not start: {log.read()[-2000:]!r}")
        time.sleep(0.1)


async def main_async(args: argparse.Namespace) -> dict:
    processes = [start_replica_process(f"r{i}", args.slots) for i in range(args.replicas)]
    try:
        for process, url in processes:
            await asyncio.to_thread(wait_ready, process, url, 180)
        urls = [url for _, url in processes]
        ports = [url.rsplit(":", 1)[1] for url in urls]
        report: dict = {
            "benchmark": "dispatch_sim",
            "replicas": args.replicas,
            "slots_per_replica": args.slots,
            "mean_session_seconds": args.mean_seconds,
            "baseline_direct_session_open_ms": await direct_baseline(urls, 20),
            "loads": [],
        }
        with dispatcher_process(urls, args.poll_interval) as dispatcher:
            for rho in (args.below, args.above):
                await asyncio.sleep(2 * args.poll_interval + 2)  # every slot back, polled
                print(f"offered load {rho}...", file=sys.stderr)
                report["loads"].append(await run_load(dispatcher, ports, args, rho))
        below = report["loads"][0]
        report["meets_target"] = (
            below["refused_by_dispatcher"] == 0
            and below["refused_by_replica_after_dispatch"] == 0
            and below["failed_to_open"] == 0
            and not below["max_at_once_over_slots"]
            and all(not load["max_at_once_over_slots"] for load in report["loads"])
            and all(load["refused_while_a_slot_was_free"] == 0 for load in report["loads"])
            and all(load["dispatch_ms"]["p99"] <= 10.0 for load in report["loads"])
        )
        return report
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                print("a replica did not stop within 60 s of SIGTERM: killed", file=sys.stderr)
                process.kill()
                process.wait(10)
            if process.stderr is not None:
                process.stderr.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3, help="K replicas")
    parser.add_argument("--slots", type=int, default=4, help="S session slots per replica")
    parser.add_argument("--sessions", type=int, default=80, help="arrivals per load")
    parser.add_argument("--mean-seconds", type=float, default=8.0, help="mean session length")
    parser.add_argument("--below", type=float, default=0.5, help="offered load below capacity")
    parser.add_argument("--above", type=float, default=1.5, help="offered load above capacity")
    parser.add_argument("--poll-interval", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    started = time.perf_counter()
    report = asyncio.run(main_async(args))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
