"""Sentence streaming on the real ONNX model: early first chunk, seamless joins, prompt stop."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from contextlib import aclosing

import numpy as np
import pytest

from airvoice.engines.kokoro import KokoroEngine
from airvoice.engines.kokoro.engine import to_pcm16
from airvoice.engines.kokoro.g2p import EnglishG2P
from airvoice.engines.kokoro.segment import split_sentences
from airvoice.engines.kokoro.vocab import MAX_PHONEMES, encode, normalize
from airvoice.engines.kokoro.voices import style_for

THREE_SENTENCES = (
    "The quick brown fox jumps over the lazy dog. I bought 12 apples and 3 oranges at the "
    "market! What time does the train to Boston leave tomorrow?"
)
#: Largest sample step allowed where two chunks meet, in int16 steps (-60 dBFS). Kokoro starts
#: and ends each piece in silence: the measured step is 0 and the 5 ms edges have RMS < 1.
CLICK_BOUND = 32


def pcm(chunk: bytes) -> np.ndarray:
    return np.frombuffer(chunk, dtype="<i2")


def worker_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "kokoro-tts"]


async def wait_for_workers_to_exit(timeout: float = 20.0) -> float:
    start = time.perf_counter()
    while worker_threads():
        assert time.perf_counter() - start < timeout, "the synthesis thread kept running"
        await asyncio.sleep(0.01)
    return time.perf_counter() - start


def assert_stopped_within_one_chunk(calls, stopped_at: float, exit_delay: float) -> None:
    """At most one model call starts after the stop, and the worker is gone one call later."""
    started_after = [c for c in calls if c.start > stopped_at]
    assert len(started_after) <= 1, f"{len(started_after)} chunks started after the stop"
    longest = max(c.end - c.start for c in calls)
    assert exit_delay <= longest + 0.5


async def test_first_chunk_arrives_before_second_sentence_is_synthesized(
    recording_engine, english_voice
):
    arrivals = []
    async for chunk in recording_engine.stream(THREE_SENTENCES, english_voice):
        arrivals.append(time.perf_counter())
        assert len(chunk) % 2 == 0
    calls = recording_engine.backend.calls
    assert len(calls) == 3 and len(arrivals) == 3
    assert arrivals[0] < calls[1].end
    assert arrivals[0] - calls[0].end < 0.25  # handed over at once, not batched


async def test_stream_equals_the_sentences_synthesized_one_by_one(onnx_engine, english_voice):
    chunks = [pcm(c) async for c in onnx_engine.stream(THREE_SENTENCES, english_voice)]

    g2p = EnglishG2P.shared()
    pack = onnx_engine.voices.get(english_voice)
    expected = []
    for sentence in split_sentences(THREE_SENTENCES):
        tokens = encode(normalize(g2p(sentence)))
        audio = onnx_engine.backend.synthesize(tokens, style_for(pack, len(tokens)), 1.0)
        expected.append(to_pcm16(audio))
    assert [len(c) for c in chunks] == [len(e) for e in expected]
    streamed, reference = np.concatenate(chunks), np.concatenate(expected)
    assert np.abs(streamed.astype(np.int32) - reference).max() <= 1

    joins = np.cumsum([len(c) for c in chunks])[:-1]
    steps = np.abs(np.diff(streamed.astype(np.int32)))[joins - 1]
    assert steps.max() <= CLICK_BOUND, f"clicks at joins: {steps}"
    for chunk in chunks:
        edge = chunk.astype(np.float64)
        assert np.sqrt(np.mean(edge[:120] ** 2)) <= CLICK_BOUND  # first 5 ms
        assert np.sqrt(np.mean(edge[-120:] ** 2)) <= CLICK_BOUND  # last 5 ms
    assert np.abs(streamed).max() > 3000  # and there is speech in between


async def test_long_first_sentence_starts_with_its_first_clause(onnx_engine):
    text = (
        "When you get to the station tomorrow morning, walk past the ticket machines, turn "
        "left at the bakery, and take the stairs down to platform four, where the train to "
        "the airport leaves every fifteen minutes. Then relax."
    )
    pieces = onnx_engine.phonemize(text)
    assert len(pieces[0]) <= onnx_engine.first_piece_phonemes < len(pieces[0]) + len(pieces[1])
    assert pieces[0].endswith(",")
    assert len(pieces) == 3  # the first clause, the rest of the sentence, "Then relax."


async def test_closing_the_stream_stops_synthesis_within_one_chunk(recording_engine, english_voice):
    text = " ".join(f"This is sentence number {i} of a long reply." for i in range(1, 9))
    stream = recording_engine.stream(text, english_voice)
    first = await anext(stream)
    assert len(first) > 0
    closed_at = time.perf_counter()
    await stream.aclose()
    exit_delay = await wait_for_workers_to_exit()
    assert_stopped_within_one_chunk(recording_engine.backend.calls, closed_at, exit_delay)
    # The chunk heard, one ahead (lookahead=1), at most one in progress; never all eight.
    assert len(recording_engine.backend.calls) <= 3


async def test_cancelling_the_task_stops_synthesis_within_one_chunk(
    recording_engine, english_voice
):
    text = " ".join(f"Here comes sentence number {i}." for i in range(1, 9))
    got_one = asyncio.Event()

    async def speak() -> None:
        async for _chunk in recording_engine.stream(text, english_voice):
            got_one.set()

    task = asyncio.create_task(speak())
    await got_one.wait()
    cancelled_at = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    exit_delay = await wait_for_workers_to_exit()
    assert_stopped_within_one_chunk(recording_engine.backend.calls, cancelled_at, exit_delay)
    assert len(recording_engine.backend.calls) <= 3


async def test_twenty_thousand_characters_stream_incrementally(recording_engine, english_voice):
    sentences = [
        f"Item {i} on the list is a short sentence about the weather, the news and the time."
        for i in range(1, 400)
    ]
    text = " ".join(sentences)[:20_000]
    assert len(text) == 20_000
    tracemalloc.start()
    try:
        start = time.perf_counter()
        got = []
        async with aclosing(recording_engine.stream(text, english_voice)) as stream:
            async for chunk in stream:
                got.append(time.perf_counter() - start)
                assert len(chunk) > 24_000  # each a whole sentence, 0.5 s or more
                if len(got) == 3:
                    break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await wait_for_workers_to_exit()
    # Work and memory follow what was heard, not the length of the text.
    assert len(got) == 3 and got == sorted(got)
    assert len(recording_engine.backend.calls) <= 3 + 2

    assert peak < 16 * 2**20, f"peak Python allocations {peak / 2**20:.1f} MiB"


def test_twenty_thousand_characters_cut_to_the_model_context(onnx_engine):
    run_on = "and then the dog barked at the mailman again " * 450  # no full stop at all
    text = (run_on + "The end.")[:20_000]
    pieces = onnx_engine.phonemize(text)
    assert max(len(p) for p in pieces) <= MAX_PHONEMES
    assert sum(len(p) for p in pieces) > 15_000  # nothing dropped


async def test_engines_share_one_model_voices_and_g2p(onnx_dir, english_voice):
    first = KokoroEngine(onnx_dir, backend="onnx", device="cpu")
    other = KokoroEngine(onnx_dir / "kokoro-v1.0.int8.onnx", backend="auto", device="cpu")
    assert other.backend is first.backend
    assert other.voices is first.voices
    assert other.g2p is first.g2p
    a, b = await asyncio.gather(  # two sessions at once on the one model
        _collect(other.stream("Good morning.", english_voice)),
        _collect(first.stream("Good morning.", english_voice)),
    )
    assert a == b and len(a) > 0


async def _collect(stream) -> bytes:
    return b"".join([c async for c in stream])


async def test_a_synthesis_error_reaches_the_consumer(onnx_engine, ja_voices, english_voice):
    class FailsOnSecondCall:
        name = "fails"

        def __init__(self) -> None:
            self.calls = 0

        def synthesize(self, tokens, style, speed):
            self.calls += 1
            if self.calls == 2:
                raise RuntimeError("out of GPU memory")
            return onnx_engine.backend.synthesize(tokens, style, speed)

    engine = KokoroEngine(FailsOnSecondCall(), ja_voices)
    got = []
    with pytest.raises(RuntimeError, match="out of GPU memory"):
        async for chunk in engine.stream(THREE_SENTENCES, english_voice):
            got.append(chunk)
    assert len(got) == 1
    await wait_for_workers_to_exit()
