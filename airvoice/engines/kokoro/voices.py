"""Kokoro voices: style packs by name, loaded once, and blends of them.

A voice pack is an array of 510 style vectors of 256 floats, one per input length (the model
reads row ``n - 1`` for ``n`` phonemes). Packs come as Kokoro ``.pt`` files (one voice each,
named by the file), ``.npz`` banks (many voices, named by key; kokoro-onnx's ``voices-*.bin`` is
one too) or raw float32 ``.bin`` files (one voice each).
"""

from __future__ import annotations

import os
import threading
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from airvoice.engines.kokoro.cache import shared
from airvoice.engines.kokoro.errors import ModelFileMissingError, UnknownVoiceError

STYLE_DIM = 256
VOICE_SUFFIXES = (".pt", ".npz", ".bin")

VoiceSource = str | os.PathLike[str]


class VoiceLibrary:
    """The voices an engine can speak with, by name; ``get`` also takes blends."""

    def __init__(self, packs: Mapping[str, np.ndarray]) -> None:
        if not packs:
            raise ModelFileMissingError(
                "no voice packs were given; pass .pt voice files, an .npz voice bank, or a "
                "directory holding them (e.g. the voices/ folder of hexgrad/Kokoro-82M)"
            )
        self._packs = {name: _as_pack(array, name) for name, array in packs.items()}
        self._blends: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, sources: VoiceSource | Iterable[VoiceSource]) -> VoiceLibrary:
        """Read voices from files and directories (``.pt``, ``.npz``, ``.bin``); first name wins."""
        packs: dict[str, np.ndarray] = {}
        for path in _voice_files(sources):
            for name, array in _read_voice_file(path).items():
                packs.setdefault(name, array)
        return cls(packs)

    @classmethod
    def shared(cls, sources: VoiceSource | Iterable[VoiceSource]) -> VoiceLibrary:
        """The process-wide library for these sources (read on first use)."""
        paths = tuple(str(Path(p).resolve()) for p in _as_list(sources))
        return shared(("voices", paths), lambda: cls.load([Path(p) for p in paths]))

    @property
    def names(self) -> list[str]:
        """Names of the voices, sorted."""
        return sorted(self._packs)

    def __contains__(self, spec: object) -> bool:
        try:
            self.get(str(spec))
        except (UnknownVoiceError, ValueError):
            return False
        return True

    def get(self, spec: str) -> np.ndarray:
        """The style pack (510 x 256, float32) of a voice name or a blend.

        A blend is ``"af_heart:0.7,af_bella:0.3"``: weights are normalised to sum to one, and a
        name without a weight counts 1.
        """
        if spec in self._packs:
            return self._packs[spec]
        with self._lock:
            if spec in self._blends:
                return self._blends[spec]
        parts = parse_blend(spec)
        missing = [name for name, _ in parts if name not in self._packs]
        if missing:
            raise UnknownVoiceError(
                f"unknown voice {', '.join(map(repr, missing))}; choose from "
                f"{', '.join(self.names)} (or blend them, e.g. '{self.names[0]}:0.6,"
                f"{self.names[-1]}:0.4')"
            )
        total = sum(weight for _, weight in parts)
        blend = sum((self._packs[name] * (weight / total) for name, weight in parts))
        blend = np.asarray(blend, dtype=np.float32)
        with self._lock:
            self._blends[spec] = blend
        return blend


def parse_blend(spec: str) -> list[tuple[str, float]]:
    """``"a:0.7,b:0.3"`` -> ``[("a", 0.7), ("b", 0.3)]``; a bare name has weight 1."""
    parts: list[tuple[str, float]] = []
    for item in spec.split(","):
        name, sep, weight_text = item.strip().partition(":")
        name = name.strip()
        try:
            weight = float(weight_text) if sep else 1.0
        except ValueError:
            weight = float("nan")
        if not name or not np.isfinite(weight) or weight <= 0:
            raise UnknownVoiceError(
                f"bad voice {spec!r}: write a name, or a blend of names with positive weights "
                "like 'af_heart:0.7,af_bella:0.3'"
            )
        parts.append((name, weight))
    return parts


def _as_list(sources: VoiceSource | Iterable[VoiceSource]) -> list[VoiceSource]:
    if isinstance(sources, str | os.PathLike):
        return [sources]
    return list(sources)


def _voice_files(sources: VoiceSource | Iterable[VoiceSource]) -> list[Path]:
    files: list[Path] = []
    for source in _as_list(sources):
        path = Path(source)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in VOICE_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise ModelFileMissingError(
                f"voice file or folder {str(path)!r} does not exist; download the voices "
                "(e.g. voices/*.pt of hexgrad/Kokoro-82M) and pass their path"
            )
    return files


def _read_voice_file(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".pt":
        import torch

        tensor = torch.load(path, map_location="cpu", weights_only=True)
        return {path.stem: tensor.float().numpy()}
    if zipfile.is_zipfile(path):  # .npz, and kokoro-onnx's voices-v1.0.bin
        with np.load(path) as bank:
            return {name: bank[name] for name in bank.files}
    if path.suffix == ".bin":
        return {path.stem: np.fromfile(path, dtype="<f4")}
    raise ModelFileMissingError(f"{str(path)!r} is not a voice pack (.pt, .npz or .bin)")


def _as_pack(array: np.ndarray, name: str) -> np.ndarray:
    """A pack as a (rows, 256) float32 array, whatever its stored shape."""
    array = np.asarray(array, dtype=np.float32)
    if array.size == 0 or array.size % STYLE_DIM:
        raise ModelFileMissingError(
            f"voice {name!r} holds {array.size} floats, not a whole number of {STYLE_DIM}-wide "
            "style vectors; the file is damaged or not a Kokoro voice: download it again"
        )
    return np.ascontiguousarray(array.reshape(-1, STYLE_DIM))


def style_for(pack: np.ndarray, n_phonemes: int) -> np.ndarray:
    """The (1, 256) style vector a pack gives to an input of ``n_phonemes`` phonemes."""
    row = min(max(n_phonemes, 1), len(pack)) - 1
    return pack[row : row + 1]
