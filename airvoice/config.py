"""Configuration, and the one place where device and dtype are chosen.

Everything here is light: torch is imported only inside the functions that need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device to run on: ``auto`` picks CUDA when it is available, else the CPU."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} was asked for but CUDA is not available here; "
            "use --device cpu (slow) or run on a machine with an NVIDIA GPU"
        )
    return device


def resolve_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """The compute dtype: bf16 on CUDA, fp32 on the CPU, unless one is named."""
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; choose one of: auto, {', '.join(dtypes)}")
    return dtypes[name]


class ServerConfig(BaseSettings):
    """Settings of the voice server, read from ``AIRVOICE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="AIRVOICE_", extra="ignore")

    device: DeviceName = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
