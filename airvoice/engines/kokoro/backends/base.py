"""The interface every Kokoro synthesis backend offers."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

#: Kokoro speaks at 24 kHz, mono.
SAMPLE_RATE = 24_000


@runtime_checkable
class SynthesisBackend(Protocol):
    """Token ids + style vector -> speech. Safe to call from several threads at once."""

    #: Short name for logs and metrics: "onnx" or "torch".
    name: str

    def synthesize(self, tokens: Sequence[int], style: np.ndarray, speed: float) -> np.ndarray:
        """Speech for ``tokens`` (without pads, at most 510) as float32 samples in [-1, 1].

        ``style`` is the (1, 256) row of the voice pack for ``len(tokens)``.
        """
        ...


class Abort:
    """Stops a synthesis from another thread: ``set()`` runs the hooks of the calls in
    progress (an ONNX run is terminated) and tells the caller not to start another."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            hooks = list(self._hooks)
        for hook in hooks:
            hook()

    @contextlib.contextmanager
    def hook(self, on_abort: Callable[[], None]) -> Iterator[None]:
        """Run ``on_abort`` if ``set()`` is called while the block runs (or was already)."""
        with self._lock:
            self._hooks.append(on_abort)
            already = self._event.is_set()
        if already:
            on_abort()
        try:
            yield
        finally:
            with self._lock:
                self._hooks.remove(on_abort)
