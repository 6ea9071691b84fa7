"""``airvoice deploy --gpu``: any RunPod GPU id, or a short alias for the common ones.

An id (``NVIDIA H200 NVL``, ``NVIDIA RTX 5000 Ada Generation``...) is passed to RunPod as is
and its memory comes from RunPod's catalog at deploy time; the aliases (``L4``, ``4090``...)
carry their memory so a GPU too small for the preset is refused before any request.
"""

from __future__ import annotations

from dataclasses import dataclass

from airvoice.errors import AirvoiceError


@dataclass(frozen=True)
class GpuChoice:
    """A GPU model: the name users type, RunPod's id, and its memory (None: ask the catalog)."""

    name: str
    runpod_id: str
    memory_gb: int | None


GPUS: tuple[GpuChoice, ...] = (
    GpuChoice("L4", "NVIDIA L4", 24),
    GpuChoice("A4000", "NVIDIA RTX A4000", 16),
    GpuChoice("A4500", "NVIDIA RTX A4500", 20),
    GpuChoice("A5000", "NVIDIA RTX A5000", 24),
    GpuChoice("A6000", "NVIDIA RTX A6000", 48),
    GpuChoice("3090", "NVIDIA GeForce RTX 3090", 24),
    GpuChoice("4090", "NVIDIA GeForce RTX 4090", 24),
    GpuChoice("5090", "NVIDIA GeForce RTX 5090", 32),
    GpuChoice("4000ADA", "NVIDIA RTX 4000 Ada Generation", 20),
    GpuChoice("6000ADA", "NVIDIA RTX 6000 Ada Generation", 48),
    GpuChoice("A40", "NVIDIA A40", 48),
    GpuChoice("L40", "NVIDIA L40", 48),
    GpuChoice("L40S", "NVIDIA L40S", 48),
    GpuChoice("A100", "NVIDIA A100 80GB PCIe", 80),
    GpuChoice("A100-SXM", "NVIDIA A100-SXM4-80GB", 80),
    GpuChoice("H100", "NVIDIA H100 80GB HBM3", 80),
    GpuChoice("H100-PCIE", "NVIDIA H100 PCIe", 80),
    GpuChoice("H100-NVL", "NVIDIA H100 NVL", 94),
    GpuChoice("H200", "NVIDIA H200", 141),
)


_VENDORS = ("NVIDIA ", "AMD ")


class UnknownGpuError(AirvoiceError, ValueError):
    """A ``--gpu`` that is neither an alias nor shaped like a RunPod GPU id."""

    def __init__(self, name: str) -> None:
        self.name = name
        choices = ", ".join(g.name for g in GPUS)
        super().__init__(
            f"unknown GPU {name!r}. Choose one of: {choices}, or give any RunPod GPU id as "
            "RunPod spells it (e.g. 'NVIDIA H200 NVL', 'NVIDIA RTX 5000 Ada Generation'; "
            "the console's GPU list or GET /v2/catalog/gpus shows them)."
        )


def _key(text: str) -> str:
    key = text.upper().replace(" ", "").replace("_", "-")
    for prefix in ("NVIDIA", "GEFORCE", "RTX"):
        key = key.removeprefix(prefix).removeprefix("-")
    return key


def resolve_gpu(name: str) -> GpuChoice:
    """``L4`` -> ``NVIDIA L4`` (case and an ``RTX``/``NVIDIA`` prefix do not matter).

    A name that is no alias but reads like a RunPod id (``NVIDIA ...``, ``AMD ...``) is taken
    as one, its memory unknown until the catalog is read.
    """
    wanted = _key(name)
    for gpu in GPUS:
        if wanted in (_key(gpu.name), _key(gpu.runpod_id)):
            return gpu
    given = " ".join(name.split())
    if given.upper().startswith(_VENDORS) and len(given) > len("NVIDIA "):
        return GpuChoice(given, given, None)
    raise UnknownGpuError(name)


def fitting_aliases(memory_gb: float) -> list[str]:
    """The aliases with at least ``memory_gb`` of memory, smallest first."""
    fits = sorted((g for g in GPUS if (g.memory_gb or 0) >= memory_gb), key=lambda g: g.memory_gb)
    return [g.name for g in fits]
