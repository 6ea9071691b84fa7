"""What each model preset weighs, so the network volume is sized for it with headroom.

The figures are the Hugging Face downloads ``airvoice models prefetch`` makes into
``HF_HOME=/workspace/hf`` (safetensors only): the Ultravox repo (Whisper encoder and
projector), the Llama it names, and Kokoro-82M with its voices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from airvoice.errors import AirvoiceError
from airvoice.models import registry

MIN_VOLUME_GB = 10
MAX_VOLUME_GB = 4096
HEADROOM = 1.5
"""Room for a second revision, partial downloads and the lock file."""


@dataclass(frozen=True)
class PresetSize:
    """A preset's repo and download size."""

    name: str
    ultravox_repo: str
    download_gb: float
    min_gpu_memory_gb: int

    @property
    def volume_gb(self) -> int:
        """Network volume size for this preset: the download plus headroom, whole GB."""
        return max(MIN_VOLUME_GB, math.ceil(self.download_gb * HEADROOM / 5) * 5)


class UnknownPresetError(AirvoiceError, ValueError):
    """A ``--preset`` that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown preset {name!r}. Choose one of: {', '.join(server_presets())}.")


def server_presets() -> list[str]:
    """The presets a GPU pod can serve: those with an Ultravox repo."""
    return [
        name
        for name, preset in registry.PRESETS.items()
        if any(r.role == "ultravox" for r in preset.repos)
    ]


def preset_size(name: str) -> PresetSize:
    """Size entry of preset ``name``, from the model registry (Kokoro-82M included)."""
    preset = registry.PRESETS.get(name)
    ultravox = (
        next((r.repo_id for r in preset.repos if r.role == "ultravox"), None) if preset else None
    )
    if preset is None or ultravox is None:
        raise UnknownPresetError(name)
    tts = registry.PRESETS["kokoro-82m"]
    download = (preset.approx_bytes + tts.approx_bytes) / registry.GB
    return PresetSize(name, ultravox, round(download, 1), math.ceil(preset.vram_gb + 2))
