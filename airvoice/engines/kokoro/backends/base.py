"""The interface every Kokoro synthesis backend offers."""

from __future__ import annotations

from collections.abc import Sequence
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
