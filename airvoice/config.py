"""Configuration, and the one place where device and dtype are chosen.

Everything here is light: torch is imported only inside the functions that need it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

if TYPE_CHECKING:  # pragma: no cover
    import torch

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DeviceName = Literal["auto", "cpu", "cuda"]
EngineName = Literal["auto", "vllm", "torch"]


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


def vllm_installed() -> bool:
    """Whether vLLM can be imported here (the ``vllm`` extra), without importing it."""
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def resolve_engine(name: str = "auto", device: str = "auto") -> Literal["vllm", "torch"]:
    """The Ultravox backend: ``auto`` picks vLLM when CUDA and vLLM are both present."""
    if name == "torch":
        return "torch"
    if name == "vllm":
        if not vllm_installed():
            raise RuntimeError(
                "--engine vllm was asked for but vLLM is not installed; install it with "
                "pip install 'airvoice[vllm]', or use --engine torch"
            )
        return "vllm"
    if name != "auto":
        raise ValueError(f"unknown engine {name!r}; choose one of: auto, vllm, torch")
    if device == "cpu" or not vllm_installed() or resolve_device(device).type != "cuda":
        return "torch"
    try:
        import vllm  # noqa: F401 (an install that cannot load falls back to torch)
    except Exception as exc:
        import logging

        logging.getLogger(__name__).warning("vLLM does not load (%s): using --engine torch", exc)
        return "torch"
    return "vllm"


FP8_MIN_CAPABILITY = (8, 9)
"""FP8 tensor cores: Ada (L4, L40S, RTX 4090) and newer."""


def use_fp8(capability: tuple[int, int] | None, weight_bytes: int, total_memory: int) -> bool:
    """FP8 weights and KV cache for vLLM: on a GPU with FP8 when the bf16 weights would take
    more than half its memory (the 8B preset on a 24 GB L4), leaving the rest to the KV cache."""
    if capability is None or capability < FP8_MIN_CAPABILITY:
        return False
    return weight_bytes * 2 > total_memory


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``2001:db8::/32`` or single addresses; ValueError says which is wrong."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP address or network (e.g. 10.0.0.0/8 or 192.0.2.7)"
            ) from None
    return tuple(networks)


DEFAULT_ULTRAVOX = "fixie-ai/ultravox-v0_5-llama-3_1-8b"
DEFAULT_KOKORO = "hexgrad/Kokoro-82M"


class ServerConfig(BaseSettings):
    """Settings of ``airvoice serve``; each field is also read from ``AIRVOICE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="AIRVOICE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    ultravox: str = DEFAULT_ULTRAVOX
    """Ultravox repo id (looked up in the local HF cache) or a local directory."""
    text_model: str | None = None
    """Override of the language model named by the Ultravox config."""
    audio_model: str | None = None
    kokoro: str = DEFAULT_KOKORO
    """Kokoro repo id, directory, ``.pth`` or ``.onnx`` file."""
    kokoro_voices: str | None = None
    tts_backend: Literal["auto", "torch", "onnx"] = "auto"
    cache_dir: str | None = None
    """The Hugging Face cache (default: ``$HF_HOME/hub``)."""
    voice: str = "af_heart"
    speed: float = Field(1.0, ge=0.5, le=2.0)
    system_prompt: str | None = None
    device: DeviceName = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    engine: EngineName = "auto"
    """Ultravox backend: ``vllm`` (batched, for GPUs), ``torch`` (our own loop), or ``auto``."""
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs the vLLM engine splits the model over."""
    max_model_len: int = Field(8192, ge=256)
    """Longest conversation in tokens (vLLM sizes its KV cache and profiling by it)."""
    kv_cache_gib: float | None = Field(None, gt=0)
    """vLLM's KV cache in GiB; None: what ``gpu_memory_utilization`` leaves on a GPU, 1 GiB on
    a CPU. With ``max_model_len`` it sets how many sessions the server takes."""
    gpu_memory_utilization: float = Field(0.85, gt=0, le=0.98)
    """Share of GPU memory vLLM may take; the rest is Kokoro's and the CUDA context's."""
    quantization: Literal["auto", "none", "fp8"] = "auto"
    """vLLM weights and KV cache: ``auto`` is FP8 on Ada or newer when the weights are large."""
    max_new_tokens: int = Field(256, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    """GPUs the language model is split over (vLLM tensor parallelism; one pod's GPUs)."""
    temperature: float | None = Field(None, ge=0.0)
    """Sampling temperature (0: greedy); None takes the checkpoint's generation_config.json."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    repetition_penalty: float | None = Field(None, gt=0.0)
    """None takes generation_config.json, else 1.1 as the reference Ultravox pipeline."""
    max_sessions: int | None = Field(None, ge=1)
    """Sessions at once, the next refused with 1008. None (or ``auto``): as many as the engine
    holds: on vLLM, the conversations of ``max_model_len`` tokens its KV cache fits at once;
    on the torch engine, 4."""
    token: SecretStr | None = None
    dispatch_secret: SecretStr | None = None
    """Secret shared with ``airvoice dispatch``: lets the server accept its signed tokens."""
    replica_id: str | None = None
    """This replica's name in session tokens (default: the RunPod pod id, else random)."""
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    idle_shutdown_minutes: float | None = Field(None, gt=0)
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    max_message_bytes: int = Field(1 << 20, ge=1024)
    ping_interval_seconds: float = Field(20.0, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    vad_confidence: float = Field(0.7, gt=0, lt=1)
    vad_start_seconds: float = Field(0.2, gt=0)
    vad_stop_seconds: float = Field(0.2, gt=0)
    vad_min_volume: float = Field(0.6, ge=0, le=1)
    smart_turn: bool = True
    smart_turn_max_silence_seconds: float = Field(3.0, gt=0)
    silence_timeout_seconds: float = Field(0.6, gt=0)
    handshake_timeout_seconds: float = Field(5.0, gt=0)
    """An HTTP request or WebSocket handshake not fully received in this time is closed."""
    request_body_timeout_seconds: float = Field(10.0, gt=0)
    """An HTTP request body not fully received in this time is answered 408 and closed."""
    max_connections_per_address: int = Field(16, ge=1)
    """Open connections one client address may hold; the next is closed at once."""
    trusted_proxies: Annotated[list[str], NoDecode] = []
    """Reverse proxies (addresses or CIDR networks) whose ``X-Forwarded-For`` names the client:
    requests through them are counted per forwarded client address. Empty: headers are never
    believed. From the environment: comma-separated, or a JSON list."""
    client_ready_timeout_seconds: float = Field(10.0, gt=0)
    """A session that has not sent RTVI ``client-ready`` in this time is closed (4408)."""
    session_idle_minutes: float = Field(10.0, gt=0)
    """A session that sends no audio and no message for this long is closed (4408)."""
    max_input_backlog_seconds: float = Field(5.0, gt=0)
    """Audio a client may send ahead of real time; beyond it, audio is dropped with an error."""
    allowed_origins: list[str] = []
    """Origins whose browser pages may open /ws, beside the server's own (e.g.
    ``https://app.example.com``); ``*`` allows any. Clients that send no Origin (not browsers)
    are not affected."""

    @field_validator("max_sessions", mode="before")
    @classmethod
    def _auto_sessions(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "auto"):
            return None
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        return [str(network) for network in parse_networks(value)]
