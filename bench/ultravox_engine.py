"""Ultravox engine: time to first token at turn 1 and turn 10, with and without KV reuse.

Runs on a bench-size random model (large enough that compute shows on a 2-core CPU) built in a
temporary directory. Both modes run in the same process on the same audio, so their ratio is
meaningful on a noisy machine. Prints one JSON object.

Target: with reuse, turn 10 within 1.3x of turn 1; without reuse, TTFT grows with history.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.testing.audio import speechlike
from airvoice.testing.ultravox import build_tiny_ultravox


async def conversation_ttfts(engine, turns, reply_tokens, reuse, seconds):
    conversation = engine.new_conversation(max_context_tokens=8192)
    ttfts, prompts = [], []
    for turn in range(turns):
        stream = engine.respond(
            conversation,
            speechlike(seconds, seed=turn),
            max_new_tokens=reply_tokens,
            min_new_tokens=reply_tokens,
            reuse_kv_cache=reuse,
        )
        async for _ in stream:
            pass
        stats = await stream.wait_finished()
        ttfts.append(stats.time_to_first_token)
        prompts.append(stats.prompt_tokens)
    return ttfts, prompts


async def run(args):
    with tempfile.TemporaryDirectory() as tmp:
        built = build_tiny_ultravox(Path(tmp), size=args.size)
        settings = GenerationSettings(temperature=0.0, max_new_tokens=args.reply_tokens)
        engine = UltravoxEngine.load(
            built.ultravox_dir, built.text_model_dir, device="cpu", settings=settings
        )
        params = sum(p.numel() for p in engine.model.parameters())
        await conversation_ttfts(engine, 2, 4, True, args.seconds)  # warm-up
        runs = {True: [], False: []}
        for _ in range(args.repeats):
            for reuse in (True, False):
                ttfts, prompts = await conversation_ttfts(
                    engine, args.turns, args.reply_tokens, reuse, args.seconds
                )
                runs[reuse].append(ttfts)
        engine.close()

    def median_turn(reuse, index):
        return statistics.median(r[index] for r in runs[reuse])

    last = args.turns - 1
    result = {
        "benchmark": "ultravox_engine",
        "model": args.size,
        "parameters": params,
        "threads": torch.get_num_threads(),
        "turns": args.turns,
        "audio_seconds_per_turn": args.seconds,
        "reply_tokens": args.reply_tokens,
        "prompt_tokens_turn1": prompts[0],
        "prompt_tokens_last_turn": prompts[last],
        "repeats": args.repeats,
        "ttft_ms": {
            "reuse": {
                "turn1": round(1000 * median_turn(True, 0), 2),
                "last_turn": round(1000 * median_turn(True, last), 2),
            },
            "no_reuse": {
                "turn1": round(1000 * median_turn(False, 0), 2),
                "last_turn": round(1000 * median_turn(False, last), 2),
            },
        },
        "ratio_last_to_first": {
            "reuse": round(median_turn(True, last) / median_turn(True, 0), 3),
            "no_reuse": round(median_turn(False, last) / median_turn(False, 0), 3),
        },
        "target_reuse_ratio_max": 1.3,
    }
    result["meets_target"] = result["ratio_last_to_first"]["reuse"] <= 1.3 and (
        result["ratio_last_to_first"]["no_reuse"] > result["ratio_last_to_first"]["reuse"]
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="bench", choices=["tiny", "bench"])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--reply-tokens", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    result = asyncio.run(run(args))
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
