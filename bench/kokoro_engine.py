"""Benchmark of the Kokoro engine on the real int8 Kokoro-82M ONNX, on this CPU.

Prints one JSON object:
- ``rtf``: synthesis time / audio duration for a three-sentence reply, streamed;
- ``first_chunk_ratio``: time to the first chunk of that reply (G2P, worker thread and all)
  over the time onnxruntime takes for its first sentence alone; target <= 1.2;
- ``overhead_pct``: the whole reply through the engine (text in, PCM16 out) against
  onnxruntime called directly on the same phonemes in the same run; target <= 5.

Runs are interleaved and the medians compared. Models are built from the PyPI test packages
into a cache folder outside the repo (``--cache``, default: the system temp dir).

    python bench/kokoro_engine.py [--repeats 7] [--voice jm_kumo]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from airvoice.engines.kokoro import SAMPLE_RATE, KokoroEngine
from airvoice.engines.kokoro.vocab import encode
from airvoice.engines.kokoro.voices import style_for
from airvoice.testing.kokoro import build_kokoro_onnx

REPLY = (
    "Sure, I can help with that. The train to Boston leaves at 9:15 tomorrow morning from "
    "platform four. Would you like me to set a reminder for you?"
)


async def stream_timed(engine: KokoroEngine, text: str, voice: str) -> tuple[float, float, int]:
    """(seconds to the first chunk, seconds to the last, samples) for one streamed reply."""
    start = time.perf_counter()
    first = None
    samples = 0
    async for chunk in engine.stream(text, voice):
        if first is None:
            first = time.perf_counter() - start
        samples += len(chunk) // 2
    return first or 0.0, time.perf_counter() - start, samples


def direct_timed(session: ort.InferenceSession, feeds: list[dict[str, np.ndarray]]) -> float:
    """Seconds onnxruntime takes for these inputs, called one after the other."""
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, feed)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--voice", default="jm_kumo")
    parser.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "airvoice-bench"))
    args = parser.parse_args()

    load_start = time.perf_counter()
    model_dir = build_kokoro_onnx(Path(args.cache) / "kokoro-onnx")
    engine = KokoroEngine(model_dir, backend="onnx", device="cpu")
    load_seconds = time.perf_counter() - load_start
    backend = engine.backend
    pack = engine.voices.get(args.voice)

    pieces = engine.phonemize(REPLY)
    feeds = []
    for piece in pieces:
        tokens = encode(piece)
        feeds.append(backend.feeds(tokens, style_for(pack, len(tokens)), 1.0))

    asyncio.run(stream_timed(engine, REPLY, args.voice))  # warm up both paths
    direct_timed(backend.session, feeds)

    first_alone, first_chunk, engine_total, direct_total, g2p = [], [], [], [], []
    samples = 0
    for i in range(args.repeats):
        order = ("engine", "direct") if i % 2 == 0 else ("direct", "engine")
        for which in order:
            if which == "engine":
                first, total, samples = asyncio.run(stream_timed(engine, REPLY, args.voice))
                first_chunk.append(first)
                engine_total.append(total)
            else:
                first_alone.append(direct_timed(backend.session, feeds[:1]))
                direct_total.append(direct_timed(backend.session, feeds))
        start = time.perf_counter()
        engine.phonemize(REPLY)
        g2p.append(time.perf_counter() - start)

    audio_seconds = samples / SAMPLE_RATE
    med = statistics.median
    result = {
        "model": "kokoro-v1.0.int8.onnx",
        "backend": backend.name,
        "voice": args.voice,
        "reply_chars": len(REPLY),
        "pieces": len(pieces),
        "audio_seconds": round(audio_seconds, 3),
        "repeats": args.repeats,
        "load_seconds": round(load_seconds, 2),
        "rtf": round(med(engine_total) / audio_seconds, 3),
        "first_chunk_seconds": round(med(first_chunk), 3),
        "first_sentence_alone_seconds": round(med(first_alone), 3),
        "first_chunk_ratio": round(med(first_chunk) / med(first_alone), 3),
        "first_chunk_ratio_target": 1.2,
        "engine_seconds": round(med(engine_total), 3),
        "direct_onnxruntime_seconds": round(med(direct_total), 3),
        "g2p_seconds": round(med(g2p), 4),
        "overhead_pct": round(100 * (med(engine_total) / med(direct_total) - 1), 2),
        "overhead_pct_target": 5.0,
        "cpu_count": os.cpu_count(),
        "onnxruntime": ort.__version__,
        "python": platform.python_version(),
    }
    result["meets_targets"] = (
        result["first_chunk_ratio"] <= result["first_chunk_ratio_target"]
        and result["overhead_pct"] <= result["overhead_pct_target"]
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
