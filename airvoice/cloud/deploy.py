"""``airvoice deploy``: from nothing to a working ``wss://`` endpoint on a RunPod GPU pod.

Steps: read the catalog; reuse the network volume by name or create one where the GPU is in
stock; fill it from a short-lived CPU pod (unless told it is ready); create the GPU pod,
trying candidates (data centers, then cloud types) until one is placed; wait for RUNNING and
``/health``. Any failure after a pod was created removes that pod: nothing is left billing.
"""

from __future__ import annotations

import secrets
import shlex
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

from airvoice.cloud.endpoints import ProxyUrls
from airvoice.cloud.errors import BadRequestError, PermissionDeniedError, RunPodError
from airvoice.cloud.gpus import GpuChoice
from airvoice.cloud.models import AVAILABILITY_RANK, DataCenter, GpuType, Pod, Volume
from airvoice.cloud.pods import create_pod_or_clean_up, remove_pod
from airvoice.cloud.prefetch import PrefetchJob, PrefetchOutcome, cpu_candidates, run_prefetch
from airvoice.cloud.progress import Reporter
from airvoice.cloud.readiness import wait_ready
from airvoice.cloud.runpod import DEFAULT_BASE_URL, RunPodClient
from airvoice.cloud.sizing import PresetSize
from airvoice.cloud.specs import (
    SERVER_PORT,
    ServerSettings,
    gpu_pod_request,
    prefetch_pod_request,
    volume_request,
)
from airvoice.cloud.timing import Timing
from airvoice.errors import AirvoiceError


class DeployError(AirvoiceError):
    """The deploy could not finish; nothing it created is left running."""


@dataclass(frozen=True)
class DeployOptions:
    """Everything ``airvoice deploy`` was asked for."""

    gpu: GpuChoice
    preset: PresetSize
    image: str
    volume_name: str
    voice: str = "af_heart"
    token: str | None = None
    idle_shutdown_minutes: float = 30.0
    volume_size_gb: int | None = None
    data_centers: tuple[str, ...] = ()
    clouds: tuple[str, ...] = ("SECURE",)
    skip_prefetch: bool = False
    hf_token: str | None = None

    def __post_init__(self) -> None:
        needed = self.preset.min_gpu_memory_gb
        if self.gpu.memory_gb < needed:
            from airvoice.cloud.gpus import GPUS

            fits = [g.name for g in GPUS if g.memory_gb >= needed]
            raise DeployError(
                f"{self.gpu.name} has {self.gpu.memory_gb} GB of memory; the {self.preset.name} "
                f"preset needs {needed} GB in bf16. Choose --gpu {', '.join(fits[:6])}, or "
                "--preset ultravox-1b."
            )

    @property
    def volume_gb(self) -> int:
        """The volume size to create (or grow to)."""
        return self.volume_size_gb or self.preset.volume_gb


@dataclass
class DeployResult:
    """What a finished deploy prints (``--json`` prints this as an object)."""

    pod_id: str
    endpoint: str
    health_url: str
    token: str
    cost_per_hour: float
    gpu: str
    data_center: str
    cloud: str
    volume_id: str
    volume_name: str
    image: str
    preset: str
    prefetch: str
    talk_command: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def talk_command(endpoint: str, token: str) -> str:
    """The exact command that connects to the endpoint."""
    return f"airvoice talk {shlex.quote(endpoint)} --token {shlex.quote(token)}"


@dataclass(frozen=True)
class PlannedRequest:
    """One request a deploy would send (``--dry-run``)."""

    method: str
    url: str
    body: dict[str, Any] | None = None
    note: str = ""


@dataclass
class DeployPlan:
    """The steps and requests of a deploy, without sending anything."""

    steps: list[str] = field(default_factory=list)
    requests: list[PlannedRequest] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "dry_run": True,
            "steps": self.steps,
            "requests": [
                {k: v for k, v in asdict(r).items() if v not in (None, "")} for r in self.requests
            ],
        }


def _redacted_settings(options: DeployOptions) -> ServerSettings:
    return ServerSettings(
        token="<your --token>" if options.token else "<generated at deploy time>",
        preset=options.preset.name,
        ultravox_repo=options.preset.ultravox_repo,
        voice=options.voice,
        idle_shutdown_minutes=options.idle_shutdown_minutes,
    )


def plan_deploy(
    options: DeployOptions, base_url: str = DEFAULT_BASE_URL, proxy: ProxyUrls | None = None
) -> DeployPlan:
    """The deploy as it would run: no key, no network. Secrets are shown as placeholders."""
    proxy = proxy or ProxyUrls()
    api = base_url.rstrip("/")
    gpu = options.gpu.runpod_id
    dc = options.data_centers[0] if options.data_centers else f"<data center with {gpu} in stock>"
    volume_id, prefetch_id, pod_id = "<volume id>", "<prefetch pod id>", "<pod id>"
    hf = "<HF_TOKEN>" if options.hf_token else None
    plan = DeployPlan()
    add = plan.requests.append
    plan.steps.append(f"read the catalog: {gpu} price and stock per data center")
    add(PlannedRequest("GET", f"{api}/catalog/gpus/{quote(gpu)}?include=AVAILABILITY&product=POD"))
    add(
        PlannedRequest(
            "GET", f"{api}/catalog/datacenters?include=GPU_AVAILABILITY,CPU_AVAILABILITY"
        )
    )
    plan.steps.append(
        f"reuse the network volume {options.volume_name!r} or create it "
        f"({options.volume_gb} GB) in {dc}"
    )
    add(PlannedRequest("GET", f"{api}/network-volumes"))
    add(
        PlannedRequest(
            "POST",
            f"{api}/network-volumes",
            volume_request(options.volume_name, options.volume_gb, dc),
            note="only if no volume of that name is in the data center",
        )
    )
    if options.skip_prefetch:
        plan.steps.append("skip the prefetch (--skip-prefetch): the volume is ready")
    else:
        plan.steps.append(
            f"fetch {options.preset.name} into the volume from a CPU pod in {dc}, "
            "following its log, then remove it"
        )
        body = prefetch_pod_request(
            name="airvoice-prefetch-<id>",
            image=options.image,
            preset=options.preset.name,
            volume_id=volume_id,
            data_center=dc,
            cpu_id=cpu_candidates(None)[0],
            hf_token=hf,
        )
        add(PlannedRequest("POST", f"{api}/pods", body, note="next CPU flavor on 400/403"))
        add(PlannedRequest("GET", f"{api}/pods/{prefetch_id}", note="polled"))
        add(PlannedRequest("GET", f"{api}/pods/{prefetch_id}/logs?tail=200", note="SSE"))
        add(PlannedRequest("DELETE", f"{api}/pods/{prefetch_id}"))
    plan.steps.append(
        f"create the GPU pod ({gpu}, clouds {', '.join(options.clouds)}) in {dc}; "
        "next candidate on 400 (no capacity) or 403"
    )
    settings = _redacted_settings(options)
    body = gpu_pod_request(
        name="airvoice-<id>",
        image=options.image,
        gpu_id=gpu,
        cloud=options.clouds[0],
        data_center=dc,
        volume_id=volume_id,
        settings=settings,
    )
    add(PlannedRequest("POST", f"{api}/pods", body))
    plan.steps.append("wait for RUNNING, then for /health 200 through the proxy")
    add(PlannedRequest("GET", f"{api}/pods/{pod_id}", note="polled until RUNNING"))
    add(PlannedRequest("GET", proxy.health(pod_id, SERVER_PORT), note="polled until 200"))
    plan.steps.append(f"print {proxy.websocket(pod_id, SERVER_PORT)} and the token")
    return plan


def rank_data_centers(
    options: DeployOptions, gpu: GpuType, data_centers: list[DataCenter], volumes: list[Volume]
) -> list[DataCenter]:
    """Candidate data centers: those with the GPU in stock and network volumes, best first.

    A data center that already holds the named volume comes first; ``--data-center`` keeps
    only the ones given, in that order.
    """
    stock = dict(gpu.data_centers)
    for dc in data_centers:
        stock.setdefault(dc.id, dc.gpus.get(gpu.id, "NONE"))
    have_volume = {v.data_center for v in volumes if v.name == options.volume_name}
    usable = [
        dc
        for dc in data_centers
        if dc.volume_types and (stock.get(dc.id, "NONE") != "NONE" or dc.id in have_volume)
    ]
    if options.data_centers:
        order = {name: i for i, name in enumerate(options.data_centers)}
        return sorted((dc for dc in usable if dc.id in order), key=lambda dc: order[dc.id])
    return sorted(
        usable,
        key=lambda dc: (dc.id not in have_volume, -AVAILABILITY_RANK.get(stock[dc.id], 0), dc.id),
    )


class Deployer:
    """Runs a deploy against RunPod and reports its phases."""

    def __init__(
        self,
        client: RunPodClient,
        options: DeployOptions,
        reporter: Reporter,
        *,
        proxy: ProxyUrls | None = None,
        timing: Timing | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.reporter = reporter
        self.proxy = proxy or ProxyUrls()
        self.timing = timing or Timing()
        self.run_id = uuid.uuid4().hex[:8]

    def run(self) -> DeployResult:
        """Deploy; on any failure, remove the pod this run created and raise ``DeployError``."""
        options, client = self.options, self.client
        with self.reporter.phase(f"reading RunPod's catalog for {options.gpu.runpod_id}"):
            gpu = client.get_gpu_type(options.gpu.runpod_id)
            data_centers = client.list_data_centers(gpus=True, cpus=True)
            volumes = client.list_volumes()
        candidates = rank_data_centers(options, gpu, data_centers, volumes)
        if not candidates:
            where = ", ".join(options.data_centers) or "any data center with network volumes"
            raise DeployError(
                f"{gpu.id} is out of stock in {where}. Try another --gpu "
                f"(e.g. A5000, 4090, L40S), another --data-center, or later."
            )
        token = options.token or secrets.token_urlsafe(24)
        last_error: RunPodError | None = None
        for dc in candidates:
            volume = self._volume_in(dc, volumes)
            download_token = None
            if not options.skip_prefetch:
                job = PrefetchJob(options.image, options.preset.name, options.hf_token)
                outcome = run_prefetch(client, job, volume, dc, self.reporter, self.timing)
                if outcome is PrefetchOutcome.NO_CPU_POD:
                    self.reporter.warn(
                        f"no CPU pod could be placed in {dc.id}: the GPU pod will download "
                        "the missing weights on its first start (it gets HF_TOKEN this once)."
                    )
                    download_token = options.hf_token or ""
            for cloud in options.clouds:
                try:
                    pod = self._create_gpu_pod(dc, cloud, volume, token, download_token)
                except (BadRequestError, PermissionDeniedError) as exc:
                    last_error = exc
                    why = "no capacity" if getattr(exc, "no_capacity", False) else exc.detail
                    self.reporter.info(f"{gpu.id} not placed in {dc.id} ({cloud}): {why}")
                    continue
                return self._finish(pod, gpu, dc, cloud, volume, token, download_token)
        detail = f" Last answer: {last_error.detail}" if last_error else ""
        raise DeployError(
            f"no candidate could place a {gpu.id} pod (tried "
            f"{', '.join(dc.id for dc in candidates)}).{detail} If every attempt said the same, "
            "the request itself may be at fault; otherwise try another --gpu or later."
        )

    def _volume_in(self, dc: DataCenter, volumes: list[Volume]) -> Volume:
        options = self.options
        for volume in volumes:
            if volume.name == options.volume_name and volume.data_center == dc.id:
                if volume.size_gb < options.volume_gb:
                    with self.reporter.phase(
                        f"growing volume {volume.name} to {options.volume_gb} GB"
                    ):
                        volume = self.client.grow_volume(volume.id, options.volume_gb)
                self.reporter.info(
                    f"reusing network volume {volume.name} ({volume.id}, {volume.size_gb} GB, "
                    f"{volume.data_center})"
                )
                return volume
        with self.reporter.phase(
            f"creating network volume {options.volume_name} ({options.volume_gb} GB) in {dc.id}"
        ):
            volume = self.client.create_volume(
                volume_request(options.volume_name, options.volume_gb, dc.id)
            )
        volumes.append(volume)
        return volume

    def _create_gpu_pod(
        self,
        dc: DataCenter,
        cloud: str,
        volume: Volume,
        token: str,
        download_token: str | None,
    ) -> Pod:
        options = self.options
        settings = ServerSettings(
            token=token,
            preset=options.preset.name,
            ultravox_repo=options.preset.ultravox_repo,
            voice=options.voice,
            idle_shutdown_minutes=options.idle_shutdown_minutes,
        )
        body = gpu_pod_request(
            name=f"airvoice-{options.preset.name}-{self.run_id}",
            image=options.image,
            gpu_id=options.gpu.runpod_id,
            cloud=cloud,
            data_center=dc.id,
            volume_id=volume.id,
            settings=settings,
            download_token=download_token,
        )
        with self.reporter.phase(f"creating the {options.gpu.name} pod in {dc.id} ({cloud})"):
            return create_pod_or_clean_up(self.client, body)

    def _finish(
        self,
        pod: Pod,
        gpu: GpuType,
        dc: DataCenter,
        cloud: str,
        volume: Volume,
        token: str,
        download_token: str | None,
    ) -> DeployResult:
        try:
            ready = wait_ready(
                self.client,
                pod.id,
                self.proxy.health(pod.id, SERVER_PORT),
                self.reporter,
                self.timing,
            )
        except BaseException as exc:
            try:
                remove_pod(self.client, pod.id)
            except RunPodError as cleanup:
                self.reporter.warn(
                    f"could not remove pod {pod.id} ({cleanup}); remove it with "
                    f"`airvoice pods rm {pod.id}` so it stops billing."
                )
            if isinstance(exc, AirvoiceError):
                raise DeployError(f"{exc}\nThe pod {pod.id} was removed.") from exc
            raise
        price = gpu.price_secure if cloud == "SECURE" else gpu.price_community
        endpoint = self.proxy.websocket(pod.id, SERVER_PORT)
        return DeployResult(
            pod_id=pod.id,
            endpoint=endpoint,
            health_url=self.proxy.health(pod.id, SERVER_PORT),
            token=token,
            cost_per_hour=ready.cost_per_hour or pod.cost_per_hour or price,
            gpu=gpu.id,
            data_center=dc.id,
            cloud=cloud,
            volume_id=volume.id,
            volume_name=volume.name,
            image=self.options.image,
            preset=self.options.preset.name,
            prefetch="skipped"
            if self.options.skip_prefetch
            else ("on the GPU pod" if download_token is not None else "CPU pod"),
            talk_command=talk_command(endpoint, token),
        )
