"""The bodies airvoice sends to RunPod: the network volume, the prefetch pod, the GPU pod.

One place builds them, so ``--dry-run`` prints exactly what a real deploy sends, and
``infra/runpod/*.json`` can be checked against them.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from airvoice import __version__

DEFAULT_IMAGE = f"ghcr.io/airvoice/airvoice:{__version__}"
SERVER_PORT = 8000
VOLUME_PATH = "/workspace"
HF_HOME = f"{VOLUME_PATH}/hf"
PREFETCH_OK = "AIRVOICE_PREFETCH_OK"
PREFETCH_FAILED = "AIRVOICE_PREFETCH_FAILED"
CONTAINER_DISK_GB = 20
PREFETCH_VCPUS = 4
TTS_PRESET = "kokoro-82m"


def volume_request(name: str, size_gb: int, data_center: str) -> dict[str, Any]:
    """``CreateNetworkVolumeRequest``."""
    return {"name": name, "size": size_gb, "dataCenter": data_center}


def prefetch_command(preset: str) -> str:
    """What the prefetch pod runs: the download, a marker line, then it idles.

    These are the arguments of the image's ``airvoice`` entrypoint (RunPod passes ``args`` to
    the entrypoint). A pod's container is restarted when it exits, so ``--then-idle`` prints a
    marker the CLI watches for and sleeps; the CLI removes the pod once it has seen the marker.
    """
    return f"models prefetch --preset {shlex.quote(preset)} --preset {TTS_PRESET} --then-idle"


def prefetch_pod_request(
    *,
    name: str,
    image: str,
    preset: str,
    volume_id: str,
    data_center: str,
    cpu_id: str,
    hf_token: str | None,
) -> dict[str, Any]:
    """``CreatePodRequest`` of the short-lived CPU pod that fills the volume."""
    # The image serves offline (HF_HUB_OFFLINE=1); this pod is the one that may download.
    env = {
        "HF_HOME": HF_HOME,
        "AIRVOICE_PRESET": preset,
        "HF_HUB_OFFLINE": "0",
        "HF_XET_HIGH_PERFORMANCE": "1",
    }
    if hf_token:
        env["HF_TOKEN"] = hf_token
    return {
        "name": name,
        "image": image,
        "cpu": {"id": cpu_id, "vcpuCount": PREFETCH_VCPUS},
        "cloud": "SECURE",
        "dataCenterIds": [data_center],
        "mounts": {"network": [{"volumeId": volume_id, "path": VOLUME_PATH}]},
        "env": env,
        "args": prefetch_command(preset),
        "disk": CONTAINER_DISK_GB,
    }


@dataclass(frozen=True)
class ServerSettings:
    """What the serving pod's ``airvoice serve`` is told through its environment."""

    token: str
    preset: str
    ultravox_repo: str
    voice: str
    idle_shutdown_minutes: float
    engine: str = "auto"


def server_env(settings: ServerSettings) -> dict[str, str]:
    """The serving pod's environment (``AIRVOICE_*``, offline Hugging Face cache)."""
    env = {
        "AIRVOICE_TOKEN": settings.token,
        "AIRVOICE_PRESET": settings.preset,
        "AIRVOICE_ULTRAVOX": settings.ultravox_repo,
        "AIRVOICE_VOICE": settings.voice,
        "AIRVOICE_ENGINE": settings.engine,
        "AIRVOICE_HOST": "0.0.0.0",
        "AIRVOICE_PORT": str(SERVER_PORT),
        "HF_HOME": HF_HOME,
    }
    if settings.idle_shutdown_minutes > 0:
        env["AIRVOICE_IDLE_SHUTDOWN_MINUTES"] = f"{settings.idle_shutdown_minutes:g}"
    return env


def gpu_pod_request(
    *,
    name: str,
    image: str,
    gpu_id: str,
    cloud: str,
    data_center: str,
    volume_id: str,
    settings: ServerSettings,
    download_token: str | None = None,
) -> dict[str, Any]:
    """``CreatePodRequest`` of the serving pod.

    ``HF_TOKEN`` never goes to it, except in the fallback where no CPU pod could fill the
    volume: then ``download_token`` is given and the server downloads what is missing first.
    """
    env = server_env(settings)
    args = "serve"  # the image's entrypoint is `airvoice`
    if download_token is not None:
        args = "serve --download-missing"
        env["HF_HUB_OFFLINE"] = "0"  # serve goes offline itself once the weights are there
        if download_token:
            env["HF_TOKEN"] = download_token
    return {
        "name": name,
        "image": image,
        "gpu": {"id": gpu_id, "count": 1},
        "cloud": cloud,
        "dataCenterIds": [data_center],
        "mounts": {"network": [{"volumeId": volume_id, "path": VOLUME_PATH}]},
        "ports": [f"{SERVER_PORT}/http"],
        "env": env,
        "args": args,
        "disk": CONTAINER_DISK_GB,
    }
