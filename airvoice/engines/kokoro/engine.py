"""KokoroEngine: text in, 24 kHz speech out, streamed sentence by sentence."""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import numpy as np

from airvoice.engines.kokoro.backends import (
    SAMPLE_RATE,
    Abort,
    BackendName,
    SynthesisBackend,
    load_backend,
)
from airvoice.engines.kokoro.errors import InvalidSpeedError, ModelFileMissingError
from airvoice.engines.kokoro.g2p import EnglishG2P
from airvoice.engines.kokoro.segment import chunk_phonemes, split_sentences
from airvoice.engines.kokoro.threaded import ThreadedIterator, iterate_in_thread
from airvoice.engines.kokoro.vocab import encode, normalize
from airvoice.engines.kokoro.voices import VOICE_SUFFIXES, VoiceLibrary, VoiceSource, style_for

MIN_SPEED = 0.5
MAX_SPEED = 2.0
_WAIT_SECONDS = 0.05

# One limit per loaded model, shared by every engine (and session) that speaks with it.
_PARALLEL: weakref.WeakKeyDictionary[object, threading.BoundedSemaphore] = (
    weakref.WeakKeyDictionary()
)


class KokoroEngine:
    """Kokoro-82M text-to-speech: English text to 24 kHz mono PCM16, one piece at a time.

    Models, voices and the G2P are loaded once per process and shared by every engine built on
    the same files, so an engine per session is cheap.

    >>> engine = KokoroEngine("/models/Kokoro-82M")          # doctest: +SKIP
    >>> async for pcm in engine.stream("Hello there. How are you?", "af_heart"):
    ...     speaker.write(pcm)                                  # bytes, PCM16 little-endian
    """

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        model: str | os.PathLike[str] | SynthesisBackend,
        voices: VoiceSource | Iterable[VoiceSource] | None = None,
        *,
        backend: BackendName = "auto",
        device: str = "auto",
        dtype: str = "auto",
        british: bool = False,
        spacy_model: str | None = None,
        first_piece_phonemes: int = 100,
        lookahead: int = 2,
        max_parallel: int = 2,
    ) -> None:
        """Load (or reuse) the model, the voices and the G2P.

        Args:
            model: an ``.onnx`` file, a ``.pth`` checkpoint with ``config.json`` beside it, a
                folder holding either, or a ready ``SynthesisBackend``.
            voices: ``.pt`` / ``.npz`` / ``.bin`` voice files or folders; by default the
                ``voices/`` folder or voice banks next to the model.
            backend: ``auto`` (torch on CUDA, else onnx), ``torch`` or ``onnx``.
            device, dtype: as in ``airvoice.config``; Kokoro runs in float32.
            british: British English G2P instead of American.
            spacy_model: the installed spaCy pipeline misaki tags with (found by default).
            first_piece_phonemes: a first sentence longer than this starts with its first
                clause alone, so the first audio leaves sooner.
            lookahead: pieces synthesized ahead of the consumer while streaming.
            max_parallel: model calls at once in this process, over every stream of the same
                model (the first engine built on a model sets it). Each call holds its working
                memory while it runs; more calls at once do not finish sooner on a busy CPU.
        """
        if isinstance(model, SynthesisBackend):
            self.backend = model
            if voices is None:
                raise ModelFileMissingError("pass voices= when giving a backend object")
        else:
            self.backend = load_backend(model, backend=backend, device=device, dtype=dtype)
            voices = voices if voices is not None else _voices_near(Path(model))
        self.voices = VoiceLibrary.shared(voices)
        self.g2p = EnglishG2P.shared(british=british, spacy_model=spacy_model)
        self.first_piece_phonemes = first_piece_phonemes
        self.lookahead = lookahead
        try:
            self._parallel = _PARALLEL.setdefault(
                self.backend, threading.BoundedSemaphore(max(1, max_parallel))
            )
        except TypeError:  # a backend that cannot be weakly referenced: a limit of its own
            self._parallel = threading.BoundedSemaphore(max(1, max_parallel))

    @property
    def voice_names(self) -> list[str]:
        """Names of the voices this engine can speak with (blends of them work too)."""
        return self.voices.names

    def phonemize(self, text: str) -> list[str]:
        """The phoneme pieces ``text`` is spoken as, in order: one model call each."""
        return list(self._pieces(text))

    def stream(self, text: str, voice: str, speed: float = 1.0) -> AsyncIterator[bytes]:
        """Speak ``text``: an async iterator of PCM16LE mono 24 kHz chunks (``bytes``).

        One chunk per sentence (a long first sentence starts with its first clause; a sentence
        over 510 phonemes is cut at clauses). Synthesis runs in a worker thread; closing the
        iterator, calling its ``stop()`` or cancelling its task stops it at once (an ONNX run
        in progress is aborted). Empty text yields nothing. The voice and speed are checked
        here, before anything runs.
        """
        pack = self.voices.get(voice)
        speed = check_speed(speed)
        if not text or text.isspace():
            return _nothing()
        abort = Abort()
        stream: ThreadedIterator[bytes] = iterate_in_thread(
            lambda: self._pcm_chunks(text, pack, speed, abort),
            self.lookahead,
            name="kokoro-tts",
            on_stop=abort.set,
        )
        return stream

    def synthesize(self, text: str, voice: str, speed: float = 1.0) -> np.ndarray:
        """All of ``text`` at once, in the calling thread: an int16 array at 24 kHz."""
        pack = self.voices.get(voice)
        speed = check_speed(speed)
        chunks = [np.frombuffer(c, dtype="<i2") for c in self._pcm_chunks(text, pack, speed)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def synthesize_phonemes(
        self, phonemes: str, pack: np.ndarray, speed: float, abort: Abort | None = None
    ) -> np.ndarray:
        """One model call on a phoneme piece (at most 510 symbols): float32 samples.

        At most ``max_parallel`` calls run at once; with ``abort`` set (now or while waiting or
        running) it returns no samples at once."""
        tokens = encode(phonemes)
        if not tokens:
            return np.zeros(0, dtype=np.float32)
        style = style_for(pack, len(tokens))
        while not self._parallel.acquire(timeout=_WAIT_SECONDS):
            if abort is not None and abort.is_set():
                return np.zeros(0, dtype=np.float32)
        try:
            if abort is None or not getattr(self.backend, "supports_abort", False):
                return self.backend.synthesize(tokens, style, speed)
            if abort.is_set():
                return np.zeros(0, dtype=np.float32)
            try:
                return self.backend.synthesize(tokens, style, speed, abort=abort)  # type: ignore[call-arg]
            except Exception:
                if abort.is_set():  # the run was terminated on purpose
                    return np.zeros(0, dtype=np.float32)
                raise
        finally:
            self._parallel.release()

    def _pieces(self, text: str) -> Iterator[str]:
        first = True
        for sentence in split_sentences(text):
            phonemes = normalize(self.g2p(sentence))
            limit = self.first_piece_phonemes if first else None
            for piece in chunk_phonemes(phonemes, first_piece=limit):
                first = False
                yield piece

    def _pcm_chunks(
        self, text: str, pack: np.ndarray, speed: float, abort: Abort | None = None
    ) -> Iterator[bytes]:
        for piece in self._pieces(text):
            if abort is not None and abort.is_set():
                return
            audio = self.synthesize_phonemes(piece, pack, speed, abort)
            if audio.size:
                yield to_pcm16(audio).tobytes()


def check_speed(speed: float) -> float:
    """``speed`` as a float when it is within 0.5-2.0, else an error saying so."""
    try:
        value = float(speed)
    except (TypeError, ValueError):
        value = math.nan
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise InvalidSpeedError(
            f"speed {speed!r} is out of range: use a number from {MIN_SPEED} (half speed) "
            f"to {MAX_SPEED} (double speed); 1.0 is normal"
        )
    return value


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as little-endian int16 (clipped, rounded; NaN is silence)."""
    audio = np.nan_to_num(audio, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


def _voices_near(model: Path) -> list[Path]:
    folder = model if model.is_dir() else model.parent
    if (folder / "voices").is_dir():
        return [folder / "voices"]
    banks = sorted(p for p in folder.glob("voices*") if p.suffix in VOICE_SUFFIXES)
    if not banks:
        raise ModelFileMissingError(
            f"no voices next to {str(model)!r} (looked for voices/ and voices*.npz|.bin); "
            "download the voice packs and pass voices=their path"
        )
    return banks
