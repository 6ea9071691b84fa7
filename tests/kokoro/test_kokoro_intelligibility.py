"""The real int8 Kokoro-82M, heard by an offline Whisper: is the speech understandable?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airvoice.engines.kokoro import SAMPLE_RATE, KokoroEngine
from airvoice.testing.asr import transcribe, word_error_rate

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "I bought 12 apples and 3 oranges at the market.",
    "What time does the train to Boston leave tomorrow?",
    "Our company was founded in 1998 and now has 250 employees.",
    "Please remember to water the plants while I am away.",
]
MAX_WER = 0.25


@pytest.mark.parametrize("sentence", SENTENCES)
def test_sentence_is_understood(
    onnx_engine: KokoroEngine, whisper_dir: Path, sentence: str, english_voice
):
    audio = onnx_engine.synthesize(sentence, english_voice)
    assert audio.dtype == np.int16
    assert 0.5 < len(audio) / SAMPLE_RATE < 10
    heard = transcribe(audio, SAMPLE_RATE, whisper_dir)
    wer = word_error_rate(sentence, heard)
    assert wer <= MAX_WER, f"heard {heard!r} for {sentence!r} (WER {wer:.2f})"


def test_blended_voice_is_understood(onnx_engine: KokoroEngine, whisper_dir: Path):
    sentence = "Can you call me back at 5 this afternoon?"
    audio = onnx_engine.synthesize(sentence, "jf_alpha:0.5,jm_kumo:0.5")
    heard = transcribe(audio, SAMPLE_RATE, whisper_dir)
    assert word_error_rate(sentence, heard) <= MAX_WER, heard


def test_word_error_rate_counts_edits_not_spelling():
    assert word_error_rate("I have 12 apples.", "i have twelve apples") == 0.0
    assert word_error_rate("It costs $5, ok?", "it costs five dollars ok") == 0.0
    assert word_error_rate("the cat sat", "the dog sat down") == pytest.approx(2 / 3)
    assert word_error_rate("one two three four", "") == 1.0
