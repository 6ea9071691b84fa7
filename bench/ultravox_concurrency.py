"""Ultravox with N concurrent conversations: the vLLM engine against the torch engine.

N = 1, 4, 8 conversations run at once on a bench-size random model built in a temporary
directory, in two phases per N:

- **throughput**: each conversation sends its spoken turns back to back (a short pause between
  them, session starts spread over ``--stagger`` seconds): per-session and aggregate tokens/s,
  and the "burst" time to first token, where many turns arrive within one prefill of each other;
- **conversation**: each conversation runs at the pace of a real one: the user's turn reaches the
  engine when they stop speaking (``--seconds`` of audio after the previous turn), the user then
  listens to the reply at speech rate (``--speech-rate`` tokens/s) and thinks for a moment before
  speaking again; sessions start at random points of that cycle. This phase gives the time to
  first token a user waits for (p50/p95).

Both engines run in the same process on the same model and audio, so their ratios are meaningful
on a noisy machine. Prints one JSON object.

Targets on a CPU: the vLLM engine's aggregate tokens/s at N=4 is at least 2x its own at N=1
(the torch engine, one sequence per step, stays flat), and its conversation TTFT p95 at N=8 stays
within 2x its N=1 value. On a GPU, run the same script with ``--device cuda`` (see
docs/hardware.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.testing.audio import speechlike
from airvoice.testing.ultravox import build_tiny_ultravox


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def session(engine, index, args, ttfts, tokens_per_session, paced: bool):
    """One conversation of ``args.turns`` spoken turns: back to back, or at a real one's pace."""
    rng = random.Random(index)
    cycle = args.seconds + args.reply_tokens / args.speech_rate + 1.0
    await asyncio.sleep(rng.uniform(0, cycle if paced else args.stagger))
    conversation = engine.new_conversation(max_context_tokens=4096)
    generated, busy = 0, 0.0
    for turn in range(args.turns):
        audio = speechlike(args.seconds, seed=100 * index + turn)
        if paced:  # the user speaks: the turn reaches the engine when they stop
            await asyncio.sleep(args.seconds)
        started = time.perf_counter()
        stream = engine.respond(conversation, audio)
        async for _ in stream:
            pass
        stats = await stream.wait_finished()
        busy += time.perf_counter() - started
        ttfts.append(stats.time_to_first_token)
        generated += stats.generated_tokens
        if paced:  # the user listens to the reply, then thinks for a moment
            await asyncio.sleep(stats.generated_tokens / args.speech_rate + rng.uniform(0.3, 1.5))
        else:
            await asyncio.sleep(args.pause)
    tokens_per_session.append(generated / busy)
    return generated


async def run_level(engine, n, args, paced: bool = False):
    ttfts: list[float] = []
    per_session: list[float] = []
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(session(engine, i, args, ttfts, per_session, paced) for i in range(n))
    )
    wall = time.perf_counter() - started
    ttft = {
        "ttft_p50_ms": round(1000 * percentile(ttfts, 50), 1),
        "ttft_p95_ms": round(1000 * percentile(ttfts, 95), 1),
        "turns": len(ttfts),
    }
    if paced:
        return ttft
    return {
        "sessions": n,
        "tokens": sum(counts),
        "aggregate_tokens_per_s": round(sum(counts) / wall, 2),
        "per_session_tokens_per_s": round(statistics.mean(per_session), 2),
        "burst_ttft_p50_ms": ttft["ttft_p50_ms"],
        "burst_ttft_p95_ms": ttft["ttft_p95_ms"],
    }


def load(kind, built, args, settings):
    if kind == "torch":
        return UltravoxEngine.load(
            built.ultravox_dir, built.text_model_dir, device=args.device, settings=settings
        )
    from airvoice.config import ServerConfig
    from airvoice.engines.ultravox.backends.vllm_engine import VllmSizing, VllmUltravoxEngine
    from airvoice.engines.ultravox.loading import check_files, locate_files

    files = locate_files(built.ultravox_dir, built.text_model_dir)
    config = ServerConfig(device=args.device, engine="vllm")
    sizing = VllmSizing.for_device(config, files, check_files(files))
    return VllmUltravoxEngine.load(
        built.ultravox_dir, built.text_model_dir, sizing=sizing, settings=settings
    )


async def bench(engine, args):
    await run_level(engine, 1, argparse.Namespace(**{**vars(args), "turns": 1}))  # warm-up
    results = {}
    for n in args.sessions:
        level = await run_level(engine, n, args)
        level["conversation"] = await run_level(engine, n, args, paced=True)
        results[str(n)] = level
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="bench", help="tiny or bench (the random model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--turns", type=int, default=4, help="turns per conversation")
    parser.add_argument("--reply-tokens", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per user turn")
    parser.add_argument("--pause", type=float, default=0.2, help="pause between turns (throughput)")
    parser.add_argument("--stagger", type=float, default=0.5, help="start spread (throughput)")
    parser.add_argument(
        "--speech-rate", type=float, default=4.0, help="reply tokens/s a user listens at"
    )
    parser.add_argument("--engines", nargs="+", default=["torch", "vllm"])
    parser.add_argument("--ultravox", help="a real checkpoint (repo id in the HF cache, or dir)")
    parser.add_argument("--text-model", help="its language model, if not the one it names")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")  # stdout is the JSON's

    settings = GenerationSettings(
        temperature=0.0, max_new_tokens=args.reply_tokens, min_new_tokens=args.reply_tokens
    )
    results: dict[str, object] = {"config": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.ultravox:
            from airvoice.engines.ultravox.loading import locate_files

            built = locate_files(args.ultravox, args.text_model)
        else:
            built = build_tiny_ultravox(Path(tmp), size=args.size)
        for kind in args.engines:
            engine = load(kind, built, args, settings)
            try:
                results[kind] = asyncio.run(bench(engine, args))
            finally:
                engine.close()
    checks = {}
    vllm = results.get("vllm")
    if isinstance(vllm, dict) and {"1", "4", "8"} <= vllm.keys():
        one, four, eight = vllm["1"], vllm["4"], vllm["8"]
        checks["vllm_aggregate_n4_over_n1"] = round(
            four["aggregate_tokens_per_s"] / one["aggregate_tokens_per_s"], 2
        )
        checks["vllm_ttft_p95_n8_over_n1"] = round(
            eight["conversation"]["ttft_p95_ms"] / one["conversation"]["ttft_p95_ms"], 2
        )
        checks["vllm_burst_ttft_p95_n8_over_n1"] = round(
            eight["burst_ttft_p95_ms"] / one["burst_ttft_p95_ms"], 2
        )
        checks["targets_met"] = (
            checks["vllm_aggregate_n4_over_n1"] >= 2.0 and checks["vllm_ttft_p95_n8_over_n1"] <= 2.0
        )
    torch_runs = results.get("torch")
    if isinstance(torch_runs, dict) and {"1", "4"} <= torch_runs.keys():
        checks["torch_aggregate_n4_over_n1"] = round(
            torch_runs["4"]["aggregate_tokens_per_s"] / torch_runs["1"]["aggregate_tokens_per_s"],
            2,
        )
    if isinstance(torch_runs, dict) and {"1", "8"} <= torch_runs.keys():
        checks["torch_ttft_p95_n8_over_n1"] = round(
            torch_runs["8"]["conversation"]["ttft_p95_ms"]
            / torch_runs["1"]["conversation"]["ttft_p95_ms"],
            2,
        )
    results["checks"] = checks
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":  # vLLM starts its engine core in a spawned process
    main()
