"""Synthetic audio for tests and benchmarks (no recordings needed)."""

from __future__ import annotations

import numpy as np


def speechlike(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """Deterministic noise at speech level with a syllable-like envelope, float32 in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    envelope = 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi * max(seconds, 0.01), n))
    return (0.2 * envelope * rng.standard_normal(n)).astype(np.float32)
