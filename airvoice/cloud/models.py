"""Typed views of the RunPod objects airvoice reads (the raw JSON stays in ``raw``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AVAILABILITY_RANK = {"HIGH": 3, "MEDIUM": 2, "LOW": 1, "NONE": 0}


@dataclass(frozen=True)
class Pod:
    """A pod as ``GET /v2/pods/{id}`` returns it."""

    id: str
    name: str
    status: str
    cost_per_hour: float
    data_center: str | None
    gpu_id: str | None
    cpu_id: str | None
    image: str
    runtime_ports: list[dict[str, Any]]
    """TCP port mappings only: HTTP ports go through the proxy and are never listed here."""
    volume_id: str | None
    cuda_version: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Pod:
        runtime = data.get("runtime") or {}
        network = (data.get("mounts") or {}).get("network") or []
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            status=str(data.get("status", "")),
            cost_per_hour=float(data.get("cost") or 0.0),
            data_center=data.get("dataCenterId"),
            gpu_id=(data.get("gpu") or {}).get("id"),
            cpu_id=(data.get("cpu") or {}).get("id"),
            image=str(data.get("image", "")),
            runtime_ports=list(runtime.get("ports") or []),
            volume_id=network[0].get("volumeId") if network else None,
            cuda_version=data.get("cudaVersion"),
            env={str(k): str(v) for k, v in (data.get("env") or {}).items()},
            raw=data,
        )

    @property
    def deployment(self) -> str | None:
        """The airvoice deployment this pod belongs to (``AIRVOICE_DEPLOYMENT``), if any."""
        return self.env.get("AIRVOICE_DEPLOYMENT")

    @property
    def is_gpu(self) -> bool:
        """A GPU pod (else a CPU pod)."""
        return self.gpu_id is not None


@dataclass(frozen=True)
class Volume:
    """A network volume."""

    id: str
    name: str
    size_gb: int
    data_center: str
    type: str
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Volume:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            size_gb=int(data["size"]),
            data_center=str(data["dataCenter"]),
            type=str(data.get("type", "")),
            raw=data,
        )


@dataclass(frozen=True)
class GpuType:
    """A GPU type of the catalog, with its price and (if asked) where it is in stock."""

    id: str
    name: str
    memory_gb: int
    price_secure: float
    price_community: float
    availability: str | None
    data_centers: dict[str, str]
    """Data center id -> stock, scoped by the look-up's filters (CUDA floor, countries)."""
    cuda_versions: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> GpuType:
        price = data.get("price") or {}
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", data["id"])),
            memory_gb=int(data.get("memory") or 0),
            price_secure=float(price.get("secure") or 0.0),
            price_community=float(price.get("community") or 0.0),
            availability=data.get("availability"),
            data_centers={d["id"]: d["availability"] for d in data.get("dataCenters") or []},
            cuda_versions=[str(c["version"]) for c in data.get("cudaVersions") or []],
            raw=data,
        )


@dataclass(frozen=True)
class DataCenter:
    """A data center with, when asked, the GPU and CPU availability there."""

    id: str
    name: str
    volume_types: list[str]
    gpus: dict[str, str]
    cpus: dict[str, str]
    region: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> DataCenter:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", data["id"])),
            volume_types=list(data.get("networkVolumeTypes") or []),
            gpus={g["id"]: g["availability"] for g in data.get("gpuAvailability") or []},
            cpus={c["id"]: c["availability"] for c in data.get("cpuAvailability") or []},
            region=str(data.get("region", "")),
            raw=data,
        )


@dataclass(frozen=True)
class LogEvent:
    """One line of a pod's log stream (``{"source", "line", "ts"}`` with its SSE id)."""

    line: str
    source: str = "container"
    ts: str = ""
    id: str = ""
