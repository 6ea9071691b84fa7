"""Filling a network volume with the weights: a short-lived CPU pod in its data center."""

from __future__ import annotations

import enum
import re
import time
import uuid
from dataclasses import dataclass

from airvoice.cloud.errors import (
    BadRequestError,
    PermissionDeniedError,
    RunPodError,
    TransportError,
)
from airvoice.cloud.logs import LogCursor
from airvoice.cloud.models import DataCenter, Volume
from airvoice.cloud.pods import create_pod_or_clean_up, remove_pod
from airvoice.cloud.progress import Reporter
from airvoice.cloud.runpod import RunPodClient
from airvoice.cloud.specs import PREFETCH_FAILED, PREFETCH_OK, prefetch_pod_request
from airvoice.cloud.timing import Timing
from airvoice.errors import AirvoiceError

CPU_FLAVORS = ("cpu3c", "cpu5c", "cpu3g", "cpu5g", "cpu3m", "cpu5m")
"""CPU flavors tried for the prefetch pod, in order, where the data center has them."""
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")


class PrefetchOutcome(enum.Enum):
    """How the volume got (or will get) its weights."""

    DONE = "done"
    NO_CPU_POD = "no-cpu-pod"


class PrefetchError(AirvoiceError):
    """The prefetch pod failed; the message carries its log tail."""


@dataclass(frozen=True)
class PrefetchJob:
    """What to fetch, where to, with which image."""

    image: str
    preset: str
    hf_token: str | None


def cpu_candidates(data_center: DataCenter | None) -> list[str]:
    """The CPU flavors to try in ``data_center`` (stock first; all of ours if unknown)."""
    if data_center is None or not data_center.cpus:
        return list(CPU_FLAVORS)
    ranked = [c for c in CPU_FLAVORS if data_center.cpus.get(c, "NONE") != "NONE"]
    return ranked


def run_prefetch(
    client: RunPodClient,
    job: PrefetchJob,
    volume: Volume,
    data_center: DataCenter | None,
    reporter: Reporter,
    timing: Timing,
) -> PrefetchOutcome:
    """Fetch the preset into ``volume`` from a CPU pod, show progress, always remove the pod.

    Returns ``NO_CPU_POD`` when no CPU pod can be placed in the volume's data center.
    """
    name = f"airvoice-prefetch-{uuid.uuid4().hex[:8]}"
    pod = None
    with reporter.phase(f"placing a CPU pod to fetch {job.preset} in {volume.data_center}"):
        for cpu_id in cpu_candidates(data_center):
            body = prefetch_pod_request(
                name=name,
                image=job.image,
                preset=job.preset,
                volume_id=volume.id,
                data_center=volume.data_center,
                cpu_id=cpu_id,
                hf_token=job.hf_token,
            )
            try:
                pod = create_pod_or_clean_up(client, body)
                break
            except (BadRequestError, PermissionDeniedError) as exc:
                reporter.info(f"no {cpu_id} CPU pod in {volume.data_center}: {exc.detail}")
    if pod is None:
        return PrefetchOutcome.NO_CPU_POD
    try:
        _follow(client, pod.id, job, reporter, timing)
    finally:
        try:
            remove_pod(client, pod.id)
        except RunPodError as exc:
            reporter.warn(
                f"could not remove the prefetch pod {pod.id}: {exc}. "
                f"Remove it with `airvoice pods rm {pod.id}`."
            )
    return PrefetchOutcome.DONE


def _follow(
    client: RunPodClient, pod_id: str, job: PrefetchJob, reporter: Reporter, timing: Timing
) -> None:
    cursor = LogCursor(client, pod_id, idle_seconds=timing.log_idle_seconds)
    deadline = time.monotonic() + timing.prefetch_timeout_seconds
    with reporter.phase(f"fetching {job.preset} into the volume (pod {pod_id})") as phase:
        while True:
            try:
                status = client.get_pod(pod_id).status
            except TransportError:
                status = "UNKNOWN"
            for event in cursor.poll():
                line = event.line.strip()
                if line == PREFETCH_OK:
                    return
                if line == PREFETCH_FAILED:
                    raise _failed(f"the prefetch on pod {pod_id} failed", cursor)
                if line:
                    percent = _PERCENT.search(line)
                    phase.update(f"{percent.group(1)}%  {line}" if percent else line)
            if status in ("ERROR", "EXITED", "TERMINATED"):
                raise _failed(f"the prefetch pod {pod_id} stopped ({status})", cursor)
            if status in ("PROVISIONING", "STARTING"):
                phase.update(f"pod {status.lower()} (pulling the image)")
            if time.monotonic() > deadline:
                minutes = timing.prefetch_timeout_seconds / 60
                raise _failed(f"the prefetch took longer than {minutes:g} min", cursor)
            time.sleep(timing.poll_seconds)


def _failed(what: str, cursor: LogCursor) -> PrefetchError:
    if not cursor.lines:
        cursor.poll()
    tail = "\n".join(f"  | {line}" for line in cursor.tail()) or "  (no log lines)"
    return PrefetchError(
        f"{what}. Last lines of its log:\n{tail}\n"
        "Check HF_TOKEN (the Llama weights are gated: accept the licence on huggingface.co), "
        "then run `airvoice deploy` again; what was fetched is kept."
    )
