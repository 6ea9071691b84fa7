"""``airvoice deploy``: from nothing to a working ``wss://`` endpoint on a RunPod GPU pod.

Steps: refuse (or, with ``replace``, remove) an existing deployment of the same name; read
the catalog for the GPU, scoped to hosts whose driver runs the image's CUDA
(``MIN_CUDA_VERSION``) and to the countries/regions asked for; in each candidate data
center, in order: reuse the network volume by name or create it, fill it from a short-lived
CPU pod (unless told it is ready), create the GPU pod; wait for RUNNING and ``/health``.

Nothing billing is left behind by a failed deploy: the pods it created are removed, and so are
the volumes it created (also one left in a data center where the GPU could not be placed),
unless ``keep_volume``; the message says what it kept. On Community Cloud (no network
volumes) the GPU pod downloads the weights itself (``serve --download-missing``).

``create_gpu_pod`` makes one serving pod of a deployment given its volume, so that more
replicas can be added the same way; ``deployment_pods`` finds them by name.

With ``replicas`` > 1 the deploy starts that many identical GPU pods in the volume's data center,
all mounting the one network volume (RunPod lets several pods read one volume at once; it must be
attached at creation and binds the pods to its data center), then a small CPU pod running
``airvoice dispatch`` in front of them; the endpoint is then the dispatcher's ``/connect``.
"""

from __future__ import annotations

import secrets
import shlex
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from airvoice.cloud.endpoints import ProxyUrls
from airvoice.cloud.errors import (
    BadRequestError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RunPodError,
)
from airvoice.cloud.gpus import GpuChoice, fitting_aliases
from airvoice.cloud.models import AVAILABILITY_RANK, DataCenter, GpuType, Pod, Volume
from airvoice.cloud.pods import create_pod_or_clean_up, deployment_pods, remove_pod
from airvoice.cloud.prefetch import (
    PrefetchError,
    PrefetchJob,
    PrefetchOutcome,
    cpu_candidates,
    run_prefetch,
)
from airvoice.cloud.progress import Reporter
from airvoice.cloud.readiness import wait_ready
from airvoice.cloud.runpod import DEFAULT_BASE_URL, RunPodClient
from airvoice.cloud.sizing import PresetSize
from airvoice.cloud.specs import (
    CONTAINER_DISK_GB,
    DISPATCH_PORT,
    DISPATCHER_IDLE_MINUTES,
    DISPATCHER_VCPUS,
    IDLE_ACTIONS,
    MIN_CUDA_VERSION,
    SERVER_PORT,
    HfCredential,
    ServerSettings,
    dispatcher_pod_request,
    gpu_pod_request,
    prefetch_pod_request,
    volume_request,
)
from airvoice.cloud.timing import Timing
from airvoice.config import parse_networks
from airvoice.errors import AirvoiceError
from airvoice.origins import normalize_origin

CLOUDS = ("SECURE", "COMMUNITY")


class DeployError(AirvoiceError):
    """The deploy could not finish; nothing it created is left running."""


def memory_error(gpu: str, memory_gb: float, preset: PresetSize) -> DeployError | None:
    """The error for a GPU with too little memory for ``preset`` (None if it fits)."""
    needed = preset.min_gpu_memory_gb
    if memory_gb >= needed:
        return None
    fits = fitting_aliases(needed)
    return DeployError(
        f"{gpu} has {memory_gb:g} GB of memory; the {preset.name} preset needs {needed} GB in "
        f"bf16. Choose --gpu {', '.join(fits[:6])} (or any RunPod GPU id with enough memory), "
        "or --preset ultravox-1b."
    )


@dataclass(frozen=True)
class DeployOptions:
    """Everything ``airvoice deploy`` was asked for."""

    gpu: GpuChoice
    preset: PresetSize
    image: str
    volume_name: str
    name: str = "airvoice"
    """The deployment's name: its pods carry it (``AIRVOICE_DEPLOYMENT``) and are named after it."""
    voice: str = "af_heart"
    token: str | None = None
    idle_shutdown_minutes: float = 30.0
    idle_action: str = "terminate"
    trusted_proxies: tuple[str, ...] = ()
    """The pod's ``AIRVOICE_TRUSTED_PROXIES`` (none by default: RunPod does not document the
    addresses of the load balancer in front of pods)."""
    allowed_origins: tuple[str, ...] = ()
    """Web pages on other origins that may use the deployment from a browser: every replica's
    ``AIRVOICE_ALLOWED_ORIGINS`` and the dispatcher's CORS (``--allow-origin``)."""
    volume_size_gb: int | None = None
    data_centers: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    cloud: str = "SECURE"
    skip_prefetch: bool = False
    hf: HfCredential = field(default_factory=HfCredential)
    registry: str | None = None
    replace: bool = False
    keep_volume: bool = False
    gpu_count: int = 1
    """GPUs per pod (the model is split over them: tensor parallelism)."""
    replicas: int = 1
    """Identical GPU pods sharing the volume, behind a dispatcher when more than one."""

    def __post_init__(self) -> None:
        if self.gpu_count < 1 or self.replicas < 1:
            raise DeployError("--gpu-count and --replicas must be at least 1.")
        if self.replicas > 1 and self.cloud != "SECURE":
            raise DeployError(
                "--replicas shares one network volume between the pods, and network volumes "
                "exist on Secure Cloud only: use --cloud SECURE, or deploy single pods."
            )
        if self.cloud not in CLOUDS:
            raise DeployError(f"unknown --cloud {self.cloud!r}: use SECURE or COMMUNITY.")
        if self.idle_action not in IDLE_ACTIONS:
            raise DeployError(f"unknown --idle-action {self.idle_action!r}: terminate or stop.")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise DeployError(f"--trusted-proxies: {exc}") from None
        try:
            origins = tuple(dict.fromkeys(normalize_origin(o) for o in self.allowed_origins))
        except ValueError as exc:
            raise DeployError(f"--allow-origin: {exc}.") from None
        object.__setattr__(self, "allowed_origins", origins)
        if self.gpu.memory_gb is not None:
            error = memory_error(self.gpu.name, self.gpu.memory_gb, self.preset)
            if error:
                raise error

    @property
    def uses_volume(self) -> bool:
        """Secure Cloud keeps the weights on a network volume; Community Cloud has none."""
        return self.cloud == "SECURE"

    @property
    def dispatcher_idle_minutes(self) -> float:
        """When the dispatcher pod ends itself after its replicas: never if they never do."""
        return DISPATCHER_IDLE_MINUTES if self.idle_shutdown_minutes > 0 else 0.0

    @property
    def volume_gb(self) -> int:
        """The volume size to create (or grow to)."""
        return self.volume_size_gb or self.preset.volume_gb

    def settings(self, token: str, dispatch_secret: str | None = None) -> ServerSettings:
        """What the serving pod is told."""
        return ServerSettings(
            gpu_count=self.gpu_count,
            dispatch_secret=dispatch_secret,
            token=token,
            preset=self.preset.name,
            ultravox_repo=self.preset.ultravox_repo,
            voice=self.voice,
            idle_shutdown_minutes=self.idle_shutdown_minutes,
            idle_action=self.idle_action,
            deployment=self.name,
            trusted_proxies=self.trusted_proxies,
            allowed_origins=self.allowed_origins,
        )


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
    volume_id: str | None
    volume_name: str | None
    image: str
    preset: str
    prefetch: str
    talk_command: str
    deployment: str = "airvoice"
    cuda_version: str | None = None
    idle_action: str = "terminate"
    down_command: str = ""
    replica_pod_ids: list[str] = field(default_factory=list)
    dispatcher_pod_id: str | None = None
    gpu_count: int = 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def talk_command(endpoint: str, token: str) -> str:
    """The exact command that connects to the endpoint."""
    return f"airvoice talk {shlex.quote(endpoint)} --token {shlex.quote(token)}"


def down_command(deployment: str) -> str:
    """The command that removes a deployment's pods (``--volume``: its volume too)."""
    return f"airvoice pods down --name {shlex.quote(deployment)}"


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


def catalog_query(options: DeployOptions) -> dict[str, str]:
    """The GPU look-up's query: pod stock on hosts that run the image, where asked."""
    query = {
        "include": "AVAILABILITY",
        "product": "POD",
        "cloud": options.cloud,
        "minCudaVersion": MIN_CUDA_VERSION,
    }
    if options.countries:
        query["countryCodes"] = ",".join(options.countries)
    return query


def plan_deploy(
    options: DeployOptions, base_url: str = DEFAULT_BASE_URL, proxy: ProxyUrls | None = None
) -> DeployPlan:
    """The deploy as it would run: no key, no network. Secrets are shown as placeholders."""
    proxy = proxy or ProxyUrls()
    api = base_url.rstrip("/")
    gpu = options.gpu.runpod_id
    dc = options.data_centers[0] if options.data_centers else f"<data center with {gpu} in stock>"
    volume_id, prefetch_id, pod_id = "<volume id>", "<prefetch pod id>", "<pod id>"
    hf = HfCredential(
        token="<HF_TOKEN>" if options.hf.token else None,
        secret=options.hf.secret,
    )
    plan = DeployPlan()
    add = plan.requests.append
    plan.steps.append(
        f"find pods of the deployment {options.name!r}: "
        + ("remove them (--replace)" if options.replace else "refuse if there are any")
    )
    add(PlannedRequest("GET", f"{api}/pods"))
    plan.steps.append(
        f"read the catalog: {gpu} price and stock per data center, on hosts with CUDA "
        f">= {MIN_CUDA_VERSION}"
    )
    add(
        PlannedRequest(
            "GET", f"{api}/catalog/gpus/{quote(gpu)}?{urlencode(catalog_query(options))}"
        )
    )
    dc_query = {"include": "GPU_AVAILABILITY,CPU_AVAILABILITY"}
    if options.regions:
        dc_query["regions"] = ",".join(options.regions)
    add(PlannedRequest("GET", f"{api}/catalog/datacenters?{urlencode(dc_query)}"))
    download: HfCredential | None = None
    if options.uses_volume:
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
                "following its log, then remove it (it ends itself if this CLI dies)"
            )
            body = prefetch_pod_request(
                name=f"{options.name}-prefetch-<id>",
                image=options.image,
                preset=options.preset.name,
                volume_id=volume_id,
                data_center=dc,
                cpu_id=cpu_candidates(None)[0],
                hf=hf,
                deployment=options.name,
                registry=options.registry,
            )
            add(PlannedRequest("POST", f"{api}/pods", body, note="next CPU flavor on 400/403"))
            add(PlannedRequest("GET", f"{api}/pods/{prefetch_id}", note="polled"))
            add(PlannedRequest("GET", f"{api}/pods/{prefetch_id}/logs?tail=200", note="SSE"))
            add(PlannedRequest("DELETE", f"{api}/pods/{prefetch_id}"))
    else:
        plan.steps.append(
            "Community Cloud has no network volumes: the GPU pod downloads the weights itself "
            "(serve --download-missing)"
        )
        download = hf
    plan.steps.append(
        f"create the GPU pod ({gpu}, {options.cloud}, CUDA >= {MIN_CUDA_VERSION}) in {dc}; "
        "next data center on 400 (no capacity) or 403, removing a volume this run made there"
    )
    body = gpu_pod_request(
        name=f"{options.name}-<id>",
        image=options.image,
        gpu_id=gpu,
        cloud=options.cloud,
        data_center=dc,
        volume_id=volume_id if options.uses_volume else None,
        settings=_redacted_settings(options),
        download=download,
        registry=options.registry,
        disk_gb=_disk_gb(options),
    )
    add(PlannedRequest("POST", f"{api}/pods", body))
    if options.replicas > 1:
        plan.steps.append(
            f"create {options.replicas - 1} more identical GPU pods in {dc} on the same volume "
            "(AIRVOICE_DISPATCH_SECRET shared, generated at deploy time)"
        )
    plan.steps.append("wait for RUNNING, then for /health 200 through the proxy")
    add(PlannedRequest("GET", f"{api}/pods/{pod_id}", note="polled until RUNNING"))
    add(PlannedRequest("GET", proxy.health(pod_id, SERVER_PORT), note="polled until 200"))
    if options.replicas > 1:
        idle = options.dispatcher_idle_minutes
        ends = f"; it ends itself {idle:g} min after its last replica" if idle else ""
        plan.steps.append(
            f"create a {DISPATCHER_VCPUS}-vCPU pod in {dc} running `airvoice dispatch` over the "
            f"replicas{ends}; print {proxy.base('<dispatcher pod id>', DISPATCH_PORT)}/connect"
        )
    else:
        plan.steps.append(f"print {proxy.websocket(pod_id, SERVER_PORT)} and the token")
    return plan


def _redacted_settings(options: DeployOptions) -> ServerSettings:
    return options.settings("<your --token>" if options.token else "<generated at deploy time>")


def _disk_gb(options: DeployOptions) -> int:
    # Without a volume the weights go to the container disk.
    return CONTAINER_DISK_GB if options.uses_volume else CONTAINER_DISK_GB + options.volume_gb


def rank_data_centers(
    options: DeployOptions,
    gpu: GpuType,
    data_centers: list[DataCenter],
    volumes: list[Volume] | None = None,
) -> list[DataCenter]:
    """Candidate data centers, best first: the GPU in stock there (on hosts that run the
    image, in the countries asked for: ``gpu`` comes from the scoped catalog look-up), network
    volumes offered (Secure Cloud), in the regions asked for (``data_centers`` is filtered).

    One that already holds the named volume comes first; ``--data-center`` keeps only the ones
    given, in that order.
    """
    stock = {dc: level for dc, level in gpu.data_centers.items() if level != "NONE"}
    have_volume = {v.data_center for v in volumes or [] if v.name == options.volume_name}
    usable = [
        dc for dc in data_centers if dc.id in stock and (dc.volume_types or not options.uses_volume)
    ]
    if options.data_centers:
        order = {name: i for i, name in enumerate(options.data_centers)}
        return sorted((dc for dc in usable if dc.id in order), key=lambda dc: order[dc.id])
    return sorted(
        usable,
        key=lambda dc: (dc.id not in have_volume, -AVAILABILITY_RANK.get(stock[dc.id], 0), dc.id),
    )


def create_gpu_pod(
    client: RunPodClient,
    options: DeployOptions,
    *,
    name: str,
    data_center: str,
    volume: Volume | None,
    token: str,
    download: HfCredential | None = None,
    dispatch_secret: str | None = None,
) -> Pod:
    """Create one serving pod of ``options``' deployment (raises RunPod's error if not placed)."""
    body = gpu_pod_request(
        name=name,
        image=options.image,
        gpu_id=options.gpu.runpod_id,
        cloud=options.cloud,
        data_center=data_center,
        volume_id=volume.id if volume else None,
        settings=options.settings(token, dispatch_secret),
        download=download,
        registry=options.registry,
        disk_gb=_disk_gb(options),
    )
    return create_pod_or_clean_up(client, body)


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
        self.created_volumes: list[Volume] = []
        self.reused_volumes: list[Volume] = []
        self.removed_volumes: list[str] = []
        """What this run created and removed again, as shown to the user."""
        self.created_pods: list[Pod] = []
        """Serving and dispatcher pods of this run: removed again if the deploy fails."""

    def run(self) -> DeployResult:
        """Deploy; on any failure remove what this run created and raise ``DeployError``."""
        try:
            return self._run()
        except BaseException as exc:
            summary = self._clean_up()
            if isinstance(exc, AirvoiceError):
                raise DeployError(f"{exc}{summary}") from exc
            if summary:
                self.reporter.warn(summary.strip())
            raise

    def _run(self) -> DeployResult:
        options, client = self.options, self.client
        self._check_existing()
        with self.reporter.phase(f"reading RunPod's catalog for {options.gpu.runpod_id}"):
            try:
                gpu = client.get_gpu_type(
                    options.gpu.runpod_id,
                    cloud=options.cloud,
                    min_cuda=MIN_CUDA_VERSION,
                    countries=list(options.countries) or None,
                )
            except NotFoundError as exc:
                raise DeployError(
                    f"RunPod has no GPU type {options.gpu.runpod_id!r}: give its id as RunPod "
                    "spells it (GET /v2/catalog/gpus lists them), or an alias such as L4 or "
                    "4090."
                ) from exc
            data_centers = client.list_data_centers(
                gpus=True, cpus=True, regions=list(options.regions) or None
            )
            volumes = client.list_volumes() if options.uses_volume else []
        too_small = memory_error(gpu.id, gpu.memory_gb, options.preset)
        if too_small:
            raise too_small
        candidates = rank_data_centers(options, gpu, data_centers, volumes)
        if not candidates:
            raise DeployError(self._nowhere(gpu))
        token = options.token or secrets.token_urlsafe(24)
        secret = secrets.token_urlsafe(32) if options.replicas > 1 else None
        last_error: RunPodError | None = None
        for dc in candidates:
            volume = self._volume_in(dc, volumes) if options.uses_volume else None
            download = None if options.uses_volume else options.hf
            if volume is not None and not options.skip_prefetch:
                download = self._prefetch(volume, dc)
            try:
                with self.reporter.phase(
                    f"creating the {options.gpu.name} pod in {dc.id} ({options.cloud})"
                ):
                    pod = create_gpu_pod(
                        client,
                        options,
                        name=f"{options.name}-{self.run_id}",
                        data_center=dc.id,
                        volume=volume,
                        token=token,
                        download=download,
                        dispatch_secret=secret,
                    )
            except (BadRequestError, PermissionDeniedError) as exc:
                last_error = exc
                why = "no capacity" if getattr(exc, "no_capacity", False) else exc.detail
                self.reporter.info(f"{gpu.id} not placed in {dc.id} ({options.cloud}): {why}")
                if volume is not None and volume in self.created_volumes:
                    self._remove_volume(volume, f"the GPU could not be placed in {dc.id}")
                continue
            except PaymentRequiredError:
                raise
            self.created_pods.append(pod)
            if secret is not None:
                return self._finish_replicas(pod, gpu, dc, volume, token, download, secret)
            return self._finish(pod, gpu, dc, volume, token, download)
        detail = f" Last answer: {last_error.detail}" if last_error else ""
        raise DeployError(
            f"no candidate could place a {gpu.id} pod (tried "
            f"{', '.join(dc.id for dc in candidates)}).{detail} If every attempt said the same, "
            "the request itself may be at fault; otherwise try another --gpu or later."
        )

    def _check_existing(self) -> None:
        """Refuse a second deployment of the same name (double billing), or replace it."""
        existing = deployment_pods(self.client, self.options.name)
        if not existing:
            return
        listing = ", ".join(
            f"{p.id} ({p.status}, {p.gpu_id or p.cpu_id}, ${p.cost_per_hour:.2f}/hour)"
            for p in existing
        )
        if not self.options.replace:
            raise DeployError(
                f"the deployment {self.options.name!r} already has pods: {listing}. Use it, "
                f"remove it with `{down_command(self.options.name)}`, deploy again with "
                "--replace (removes them first), or choose another --name."
            )
        with self.reporter.phase(f"removing the pods of {self.options.name!r} (--replace)"):
            for pod in existing:
                remove_pod(self.client, pod.id)
        self.reporter.info(f"removed {listing}")

    def _nowhere(self, gpu: GpuType) -> str:
        where = []
        if self.options.data_centers:
            where.append(f"data centers {', '.join(self.options.data_centers)}")
        if self.options.regions:
            where.append(f"regions {', '.join(self.options.regions)}")
        if self.options.countries:
            where.append(f"countries {', '.join(self.options.countries)}")
        scope = " in " + "; ".join(where) if where else ""
        volumes = " with network volumes" if self.options.uses_volume else ""
        return (
            f"{gpu.id} is out of stock{scope} on hosts whose driver supports CUDA "
            f"{MIN_CUDA_VERSION} (the image's){volumes} ({self.options.cloud} cloud). Try another "
            "--gpu (e.g. A5000, 4090, L40S), another --region/--country/--data-center, or later."
        )

    def _prefetch(self, volume: Volume, dc: DataCenter) -> HfCredential | None:
        """Fill ``volume``; returns the credential for the GPU pod to download with, if it must."""
        options = self.options
        job = PrefetchJob(
            image=options.image,
            preset=options.preset.name,
            hf=options.hf,
            name=f"{options.name}-prefetch-{self.run_id}",
            deployment=options.name,
            registry=options.registry,
        )
        try:
            outcome = run_prefetch(self.client, job, volume, dc, self.reporter, self.timing)
        except PrefetchError as exc:
            raise DeployError(f"{exc}\nNo GPU pod was started.") from exc
        if outcome is PrefetchOutcome.NO_CPU_POD:
            self.reporter.warn(
                f"no CPU pod could be placed in {dc.id}: the GPU pod will download the missing "
                "weights on its first start (it gets the Hugging Face token this once)."
            )
            return options.hf
        return None

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
                if volume.id not in {v.id for v in self.reused_volumes}:
                    self.reused_volumes.append(volume)
                return volume
        with self.reporter.phase(
            f"creating network volume {options.volume_name} ({options.volume_gb} GB) in {dc.id}"
        ):
            volume = self.client.create_volume(
                volume_request(options.volume_name, options.volume_gb, dc.id)
            )
        volumes.append(volume)
        self.created_volumes.append(volume)
        return volume

    def _remove_volume(self, volume: Volume, why: str) -> bool:
        try:
            self.client.delete_volume(volume.id)
        except NotFoundError:
            pass
        except RunPodError as exc:
            self.reporter.warn(
                f"could not remove network volume {volume.name} ({volume.id}, {volume.data_center})"
                f": {exc.detail or exc}. Remove it with `airvoice volumes rm {volume.id}` so it "
                "stops billing."
            )
            return False
        self.created_volumes.remove(volume)
        label = f"network volume {volume.name} ({volume.id}, {volume.data_center})"
        self.removed_volumes.append(f"{label}: {why}")
        self.reporter.info(f"removed {label}: {why}")
        return True

    def _clean_up(self) -> str:
        """Remove the pods and volumes this run created; say what was removed and kept."""
        kept = []
        for pod in self.created_pods:
            try:
                remove_pod(self.client, pod.id)
            except RunPodError as exc:
                kept.append(f"pod {pod.id}: could not be removed ({exc}), run `airvoice pods rm`")
            else:
                self.removed_volumes.append(f"pod {pod.id}")
        self.created_pods.clear()
        for volume in list(self.created_volumes):
            label = f"{volume.name} ({volume.id}, {volume.data_center})"
            if self.options.keep_volume:
                kept.append(
                    f"network volume {label}, created by this run (--keep-volume); remove it "
                    f"with `airvoice volumes rm {volume.id}`"
                )
            elif not self._remove_volume(volume, "the deploy failed"):
                kept.append(
                    f"network volume {label}: could not be removed, run "
                    f"`airvoice volumes rm {volume.id}`"
                )
        for volume in self.reused_volumes:
            kept.append(
                f"network volume {volume.name} ({volume.id}, {volume.data_center}), which existed "
                "before this deploy (with the weights fetched so far)"
            )
        text = ""
        if self.removed_volumes:
            text += "\nRemoved what this deploy created: " + "; ".join(self.removed_volumes) + "."
        if kept:
            text += "\nKept: " + "; ".join(kept) + "."
        return text

    def _finish(
        self,
        pod: Pod,
        gpu: GpuType,
        dc: DataCenter,
        volume: Volume | None,
        token: str,
        download: HfCredential | None,
    ) -> DeployResult:
        options = self.options
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
        price = gpu.price_secure if options.cloud == "SECURE" else gpu.price_community
        endpoint = self.proxy.websocket(pod.id, SERVER_PORT)
        if options.skip_prefetch and volume is not None:
            prefetch = "skipped"
        elif download is not None:
            prefetch = "on the GPU pod"
        else:
            prefetch = "CPU pod"
        return DeployResult(
            pod_id=pod.id,
            endpoint=endpoint,
            health_url=self.proxy.health(pod.id, SERVER_PORT),
            token=token,
            cost_per_hour=ready.cost_per_hour or pod.cost_per_hour or price,
            gpu=gpu.id,
            data_center=dc.id,
            cloud=options.cloud,
            volume_id=volume.id if volume else None,
            volume_name=volume.name if volume else None,
            image=options.image,
            preset=options.preset.name,
            prefetch=prefetch,
            talk_command=talk_command(endpoint, token),
            deployment=options.name,
            cuda_version=ready.cuda_version,
            idle_action=options.idle_action,
            down_command=down_command(options.name),
        )

    def _finish_replicas(
        self,
        first: Pod,
        gpu: GpuType,
        dc: DataCenter,
        volume: Volume | None,
        token: str,
        download: HfCredential | None,
        secret: str,
    ) -> DeployResult:
        """The other replicas in ``dc`` on the same volume, then the dispatcher in front."""
        options = self.options
        pods = [first]
        for number in range(2, options.replicas + 1):
            with self.reporter.phase(
                f"creating replica {number} of {options.replicas} in {dc.id} (same volume)"
            ):
                try:
                    pod = create_gpu_pod(
                        self.client,
                        options,
                        name=f"{options.name}-{self.run_id}-{number}",
                        data_center=dc.id,
                        volume=volume,
                        token=token,
                        download=download,
                        dispatch_secret=secret,
                    )
                except (BadRequestError, PermissionDeniedError) as exc:
                    why = "no capacity" if getattr(exc, "no_capacity", False) else exc.detail
                    raise DeployError(
                        f"replica {number} of {options.replicas} could not be placed in {dc.id}, "
                        f"the volume's data center ({why}). Try fewer --replicas, another "
                        "--gpu, or later."
                    ) from exc
            self.created_pods.append(pod)
            pods.append(pod)
        result = self._finish(first, gpu, dc, volume, token, download)
        cost = result.cost_per_hour
        for pod in pods[1:]:
            ready = wait_ready(
                self.client,
                pod.id,
                self.proxy.health(pod.id, SERVER_PORT),
                self.reporter,
                self.timing,
            )
            cost += ready.cost_per_hour or pod.cost_per_hour
        replica_urls = [self.proxy.base(p.id, SERVER_PORT) for p in pods]
        dispatcher = self._start_dispatcher(dc, replica_urls, token, secret)
        endpoint = f"{self.proxy.base(dispatcher.id, DISPATCH_PORT)}/connect"
        result.endpoint = endpoint
        result.health_url = self.proxy.health(dispatcher.id, DISPATCH_PORT)
        result.talk_command = talk_command(endpoint, token)
        result.replica_pod_ids = [p.id for p in pods]
        result.dispatcher_pod_id = dispatcher.id
        result.cost_per_hour = round(cost + dispatcher.cost_per_hour, 4)
        result.gpu_count = options.gpu_count
        self.created_pods.clear()  # done: they are the deployment now
        return result

    def _start_dispatcher(
        self, dc: DataCenter, replica_urls: list[str], token: str, secret: str
    ) -> Pod:
        options = self.options
        last: RunPodError | None = None
        for cpu_id in cpu_candidates(dc):
            body = dispatcher_pod_request(
                name=f"{options.name}-dispatch-{self.run_id}",
                image=options.image,
                data_center=dc.id,
                cpu_id=cpu_id,
                replica_urls=replica_urls,
                token=token,
                secret=secret,
                deployment=options.name,
                registry=options.registry,
                allow_origins=options.allowed_origins,
                idle_minutes=options.dispatcher_idle_minutes,
                idle_action=options.idle_action,
            )
            try:
                with self.reporter.phase(f"creating the dispatcher pod in {dc.id}"):
                    pod = create_pod_or_clean_up(self.client, body)
            except (BadRequestError, PermissionDeniedError) as exc:
                last = exc
                continue
            self.created_pods.append(pod)
            wait_ready(
                self.client,
                pod.id,
                self.proxy.health(pod.id, DISPATCH_PORT),
                self.reporter,
                self.timing,
            )
            return pod
        detail = f" ({last.detail})" if last else ""
        raise DeployError(
            f"no CPU pod could be placed in {dc.id} for the dispatcher{detail}. Run it on any "
            "host instead: `airvoice dispatch --replica URL ...` with this deploy's token and "
            "secret, or try later."
        )
