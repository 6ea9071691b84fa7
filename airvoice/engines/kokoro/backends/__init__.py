"""Synthesis backends behind one interface, and the choice between them.

``torch`` (the ``kokoro`` package's ``KModel``) is the default on CUDA; ``onnx`` (onnxruntime
on an ONNX export) is the default on the CPU. Loaded backends are shared by every engine.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from airvoice.engines.kokoro.backends.base import SAMPLE_RATE, Abort, SynthesisBackend
from airvoice.engines.kokoro.cache import shared
from airvoice.engines.kokoro.errors import ModelFileMissingError

BackendName = Literal["auto", "torch", "onnx"]

#: ONNX file names by preference when a folder holds several (full precision first).
ONNX_PREFERENCE = (
    "kokoro-v1.0.onnx",
    "model.onnx",
    "kokoro-v1.0.fp16.onnx",
    "model_fp16.onnx",
    "kokoro-v1.0.int8.onnx",
    "model_quantized.onnx",
)

__all__ = ["SAMPLE_RATE", "Abort", "BackendName", "SynthesisBackend", "load_backend"]


def load_backend(
    model: str | os.PathLike[str],
    backend: BackendName = "auto",
    device: str = "auto",
    dtype: str = "auto",
) -> SynthesisBackend:
    """The shared backend for ``model``: an ``.onnx`` file, a ``.pth`` checkpoint with its
    ``config.json`` beside it, or a folder holding either (the hub layout).

    ``auto`` picks torch when CUDA is available and a checkpoint is there, else onnx when an
    ONNX file is there, else torch on the CPU.
    """
    from airvoice.config import resolve_device, resolve_dtype

    path = Path(model).expanduser()
    if not path.exists():
        raise ModelFileMissingError(
            f"Kokoro model {str(path)!r} does not exist; download hexgrad/Kokoro-82M "
            "(config.json + kokoro-v1_0.pth) or a Kokoro ONNX export and pass its path"
        )
    torch_device = resolve_device(device)
    if dtype not in ("auto", "float32"):
        resolve_dtype(torch_device, dtype)  # an unknown name gets the shared error message
        raise ValueError(
            f"dtype {dtype!r} is not supported by Kokoro: KModel mixes float32 tensors into its "
            "forward pass; use dtype 'auto' or 'float32' (82M parameters are fast in fp32)"
        )
    checkpoint = _find_checkpoint(path)
    onnx_file = _find_onnx(path)
    if backend == "auto":
        if checkpoint is not None and (torch_device.type == "cuda" or onnx_file is None):
            backend = "torch"
        elif onnx_file is not None:
            backend = "onnx"
    if backend == "torch" and checkpoint is not None:
        from airvoice.engines.kokoro.backends.torch_backend import TorchBackend

        key = ("torch", str(checkpoint.resolve()), str(torch_device))
        return shared(key, lambda: TorchBackend(checkpoint, device=torch_device))
    if backend == "onnx" and onnx_file is not None:
        from airvoice.engines.kokoro.backends.onnx_backend import OnnxBackend

        use_cuda = torch_device.type == "cuda"
        key = ("onnx", str(onnx_file.resolve()), use_cuda)
        return shared(key, lambda: OnnxBackend(onnx_file, use_cuda=use_cuda))
    wanted = {
        "torch": "a .pth checkpoint with config.json beside it",
        "onnx": "an .onnx file",
        "auto": "a .pth checkpoint (with config.json) or an .onnx file",
    }[backend]
    raise ModelFileMissingError(
        f"{str(path)!r} holds no Kokoro model for the {backend} backend: expected {wanted}; "
        "download it, or choose the other backend"
    )


def _find_checkpoint(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".pth" else None
    candidates = sorted(path.glob("*.pth"))
    if not (path / "config.json").is_file():
        return None
    return candidates[0] if candidates else None


def _find_onnx(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".onnx" else None
    candidates = {p.name: p for p in [*path.glob("*.onnx"), *path.glob("onnx/*.onnx")]}
    for name in ONNX_PREFERENCE:
        if name in candidates:
            return candidates[name]
    return candidates[min(candidates)] if candidates else None
