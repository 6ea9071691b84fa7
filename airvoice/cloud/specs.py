"""The bodies airvoice sends to RunPod: the network volume, the prefetch pod, the GPU pod.

One place builds them, so ``--dry-run`` prints exactly what a real deploy sends, and
``infra/runpod/*.json`` can be checked against them.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from typing import Any

from airvoice import __version__

DEFAULT_IMAGE = f"ghcr.io/airvoice/airvoice:{__version__}"
MIN_CUDA_VERSION = "13.0"
"""The oldest host CUDA (driver) version the image runs on: the CUDA build of its torch wheel.

The image's torch is PyTorch's CUDA 13.0 build (the Dockerfile's ``TORCH_CUDA``; the vLLM
wheel is built against it), which needs a host driver reporting CUDA 13.0 or newer (R580+).
RunPod places a pod only on a host at or above ``gpu.minCudaVersion``, and the catalog look-up
uses the same floor, so a pod never lands on a driver too old for the image. Change it
together with the Dockerfile (the legacy CUDA 12.6 build would be "12.6").
``tests/cloud/test_runpod_rules.py`` checks that the two agree."""
SERVER_PORT = 8000
DISPATCH_PORT = 8080
ROLE_ENV = "AIRVOICE_ROLE"
"""``replica`` (a serving GPU pod) or ``dispatcher`` (the CPU pod in front of the replicas)."""
DISPATCHER_VCPUS = 2
DISPATCHER_IDLE_MINUTES = 15.0
"""The dispatcher pod ends itself once no replica has answered for this long: the replicas have
ended themselves (idle shutdown), or died. Longer than a crashed replica's restart (container
start and model load from the volume) takes, so a restart does not leave it without its front."""
VOLUME_PATH = "/workspace"
HF_HOME = f"{VOLUME_PATH}/hf"
PREFETCH_OK = "AIRVOICE_PREFETCH_OK"
PREFETCH_FAILED = "AIRVOICE_PREFETCH_FAILED"
PREFETCH_GRACE_SECONDS = 300
"""After its marker, the prefetch pod waits this long for the CLI to remove it, then
terminates itself (the CLI may have died: laptop asleep, Ctrl-C)."""
CONTAINER_DISK_GB = 20
PREFETCH_VCPUS = 4
TTS_PRESET = "kokoro-82m"
DEPLOYMENT_ENV = "AIRVOICE_DEPLOYMENT"
"""Every pod of a deployment carries its name here (``airvoice pods down`` finds them by it)."""
IDLE_ACTIONS = ("terminate", "stop")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def volume_request(name: str, size_gb: int, data_center: str) -> dict[str, Any]:
    """``CreateNetworkVolumeRequest``."""
    return {"name": name, "size": size_gb, "dataCenter": data_center}


def secret_reference(name: str) -> str:
    """``{{ RUNPOD_SECRET_<name> }}``: RunPod puts the secret's value there when the pod boots.

    The pod's ``env`` as the API returns it keeps the reference, never the value (RunPod docs,
    "Manage secrets": docs.runpod.io/pods/templates/secrets).
    """
    if not _SECRET_NAME.match(name):
        raise ValueError(
            f"{name!r} is not a RunPod secret name: use the name shown in the console's "
            "Secrets page (letters, digits, '-' and '_')."
        )
    return "{{ RUNPOD_SECRET_" + name + " }}"


@dataclass(frozen=True)
class HfCredential:
    """How a pod that downloads gets ``HF_TOKEN``: a RunPod secret (preferred) or the value."""

    token: str | None = None
    secret: str | None = None

    def env(self) -> dict[str, str]:
        """The ``HF_TOKEN`` entry (empty when there is no token at all)."""
        if self.secret:
            return {"HF_TOKEN": secret_reference(self.secret)}
        return {"HF_TOKEN": self.token} if self.token else {}

    @property
    def given(self) -> bool:
        """Whether any token goes to the pod."""
        return bool(self.secret or self.token)


def prefetch_command(preset: str) -> str:
    """What the prefetch pod runs: the download, a marker line, then it ends itself.

    These are the arguments of the image's ``airvoice`` entrypoint (RunPod passes ``args`` to
    the entrypoint). A pod's container is restarted when it exits, so ``--then-idle`` prints a
    marker the CLI watches for; the CLI removes the pod once it has seen it, and if the CLI is
    gone the pod terminates itself after ``AIRVOICE_PREFETCH_GRACE_SECONDS``.
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
    hf: HfCredential,
    deployment: str = "airvoice",
    registry: str | None = None,
) -> dict[str, Any]:
    """``CreatePodRequest`` of the short-lived CPU pod that fills the volume."""
    # The image serves offline (HF_HUB_OFFLINE=1); this pod is the one that may download.
    env = {
        "HF_HOME": HF_HOME,
        "AIRVOICE_PRESET": preset,
        "HF_HUB_OFFLINE": "0",
        "HF_XET_HIGH_PERFORMANCE": "1",
        "AIRVOICE_PREFETCH_GRACE_SECONDS": str(PREFETCH_GRACE_SECONDS),
        DEPLOYMENT_ENV: deployment,
        **hf.env(),
    }
    body: dict[str, Any] = {
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
    if registry:
        body["registry"] = registry
    return body


@dataclass(frozen=True)
class ServerSettings:
    """What the serving pod's ``airvoice serve`` is told through its environment."""

    token: str
    preset: str
    ultravox_repo: str
    voice: str
    idle_shutdown_minutes: float
    idle_action: str = "terminate"
    deployment: str = "airvoice"
    gpu_count: int = 1
    """GPUs in the pod; the language model is split over them (tensor parallelism)."""
    dispatch_secret: str | None = None
    """Shared with the dispatcher, whose signed session tokens the replica then accepts."""
    engine: str = "auto"
    trusted_proxies: tuple[str, ...] = ()
    """Proxies whose ``X-Forwarded-For`` the server believes (``AIRVOICE_TRUSTED_PROXIES``)."""
    allowed_origins: tuple[str, ...] = ()
    """Other web pages (origins) whose browsers may open ``/ws`` (``AIRVOICE_ALLOWED_ORIGINS``)."""


def server_env(settings: ServerSettings) -> dict[str, str]:
    """The serving pod's environment (``AIRVOICE_*``, offline Hugging Face cache).

    ``AIRVOICE_DEVICE=cuda``: on a GPU pod a broken GPU (driver, CUDA) must be a loud error in
    the pod's log, not a silent fall back to the CPU.
    """
    env = {
        "AIRVOICE_TOKEN": settings.token,
        "AIRVOICE_PRESET": settings.preset,
        "AIRVOICE_ULTRAVOX": settings.ultravox_repo,
        "AIRVOICE_VOICE": settings.voice,
        "AIRVOICE_ENGINE": settings.engine,
        "AIRVOICE_HOST": "0.0.0.0",
        "AIRVOICE_PORT": str(SERVER_PORT),
        "AIRVOICE_DEVICE": "cuda",
        "HF_HOME": HF_HOME,
        DEPLOYMENT_ENV: settings.deployment,
        ROLE_ENV: "replica",
    }
    if settings.gpu_count > 1:
        env["AIRVOICE_TENSOR_PARALLEL_SIZE"] = str(settings.gpu_count)
    if settings.dispatch_secret:
        env["AIRVOICE_DISPATCH_SECRET"] = settings.dispatch_secret
    if settings.trusted_proxies:
        env["AIRVOICE_TRUSTED_PROXIES"] = ",".join(settings.trusted_proxies)
    if settings.allowed_origins:
        # A JSON list: how ServerConfig (pydantic-settings) reads a list from the environment.
        env["AIRVOICE_ALLOWED_ORIGINS"] = json.dumps(list(settings.allowed_origins))
    if settings.idle_shutdown_minutes > 0:
        env["AIRVOICE_IDLE_SHUTDOWN_MINUTES"] = f"{settings.idle_shutdown_minutes:g}"
        env["AIRVOICE_IDLE_ACTION"] = settings.idle_action
    return env


def gpu_pod_request(
    *,
    name: str,
    image: str,
    gpu_id: str,
    cloud: str,
    data_center: str,
    volume_id: str | None,
    settings: ServerSettings,
    download: HfCredential | None = None,
    registry: str | None = None,
    disk_gb: int = CONTAINER_DISK_GB,
) -> dict[str, Any]:
    """``CreatePodRequest`` of the serving pod.

    ``HF_TOKEN`` never goes to it, except when it must download (``download`` given: no CPU
    pod could fill the volume, or a Community Cloud pod without a volume): then the server
    fetches what is missing first and goes offline.
    """
    env = server_env(settings)
    args = "serve"  # the image's entrypoint is `airvoice`
    if download is not None:
        args = "serve --download-missing"
        env["HF_HUB_OFFLINE"] = "0"  # serve goes offline itself once the weights are there
        env.update(download.env())
    body: dict[str, Any] = {
        "name": name,
        "image": image,
        "gpu": {"id": gpu_id, "count": settings.gpu_count, "minCudaVersion": MIN_CUDA_VERSION},
        "cloud": cloud,
        "dataCenterIds": [data_center],
        "ports": [f"{SERVER_PORT}/http"],
        "env": env,
        "args": args,
        "disk": disk_gb,
    }
    if volume_id is not None:
        body["mounts"] = {"network": [{"volumeId": volume_id, "path": VOLUME_PATH}]}
    if registry:
        body["registry"] = registry
    return body


def dispatcher_pod_request(
    *,
    name: str,
    image: str,
    data_center: str,
    cpu_id: str,
    replica_urls: list[str],
    token: str,
    secret: str,
    deployment: str,
    registry: str | None = None,
    allow_origins: tuple[str, ...] = (),
    idle_minutes: float = DISPATCHER_IDLE_MINUTES,
    idle_action: str = "terminate",
) -> dict[str, Any]:
    """``CreatePodRequest`` of the small CPU pod that runs ``airvoice dispatch`` in front of the
    replicas (their proxy URLs), in their data center; ``allow_origins`` are the web pages
    that may call ``/connect`` from a browser (CORS). The pod ends itself (``idle_action``)
    once no replica has answered for ``idle_minutes`` (0: never), with the pod id and the
    pod-scoped API key RunPod injects into every pod."""
    args = (
        f"dispatch --host 0.0.0.0 --port {DISPATCH_PORT} "
        f"--idle-timeout {idle_minutes:g} --idle-action {shlex.quote(idle_action)}"
    )
    for origin in allow_origins:
        args += f" --allow-origin {shlex.quote(origin)}"
    body: dict[str, Any] = {
        "name": name,
        "image": image,
        "cpu": {"id": cpu_id, "vcpuCount": DISPATCHER_VCPUS},
        "cloud": "SECURE",
        "dataCenterIds": [data_center],
        "ports": [f"{DISPATCH_PORT}/http"],
        "env": {
            "AIRVOICE_DISPATCH_REPLICAS": ",".join(replica_urls),
            "AIRVOICE_TOKEN": token,
            "AIRVOICE_DISPATCH_SECRET": secret,
            DEPLOYMENT_ENV: deployment,
            ROLE_ENV: "dispatcher",
        },
        "args": args,
        "disk": CONTAINER_DISK_GB,
    }
    if registry:
        body["registry"] = registry
    return body
