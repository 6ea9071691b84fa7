"""What each model preset weighs, so the network volume is sized for it with headroom.

The figures are the Hugging Face downloads ``airvoice models prefetch`` makes into
``HF_HOME=/workspace/hf`` (safetensors only): the Ultravox repo (Whisper encoder and
projector), the Llama it names, and Kokoro-82M with its voices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from airvoice.errors import AirvoiceError

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


PRESETS: dict[str, PresetSize] = {
    "ultravox-8b": PresetSize("ultravox-8b", "fixie-ai/ultravox-v0_5-llama-3_1-8b", 18.5, 22),
    "ultravox-1b": PresetSize("ultravox-1b", "fixie-ai/ultravox-v0_5-llama-3_2-1b", 4.5, 8),
}
DEFAULT_PRESET = "ultravox-8b"


class UnknownPresetError(AirvoiceError, ValueError):
    """A ``--preset`` that does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown preset {name!r}. Choose one of: {', '.join(PRESETS)}.")


def _from_registry(name: str) -> PresetSize | None:
    """The figures of ``airvoice.models.registry`` when it has the preset (it is the truth)."""
    try:
        from airvoice.models import registry
    except ImportError:
        return None
    preset = registry.PRESETS.get(name)
    tts = registry.PRESETS.get("kokoro-82m")
    if preset is None or tts is None:
        return None
    ultravox = next((r.repo_id for r in preset.repos if r.role == "ultravox"), None)
    if ultravox is None:
        return None
    download = (preset.approx_bytes + tts.approx_bytes) / registry.GB
    return PresetSize(name, ultravox, round(download, 1), math.ceil(preset.vram_gb + 2))


def preset_size(name: str) -> PresetSize:
    """The size entry of preset ``name`` (the model registry's figures when it has them)."""
    found = _from_registry(name)
    if found is not None:
        return found
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPresetError(name) from None
