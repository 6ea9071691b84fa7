"""Filling a network volume with the weights: a short-lived CPU pod in its data center.

The pod prints a marker when done; the CLI removes it then. If the CLI is gone (laptop
asleep, Ctrl-C) the pod terminates itself after a grace period (``airvoice.cloud.selfstop``).
A failure says what failed, read from the pod's log: the volume not writable, no token, a
token the hub rejects, a gated licence not accepted, a full volume, an image RunPod cannot
pull.
"""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass, field

from airvoice.cloud.errors import (
    BadRequestError,
    PermissionDeniedError,
    RunPodError,
    TransportError,
)
from airvoice.cloud.logs import LogCursor, start_failure
from airvoice.cloud.models import DataCenter, LogEvent, Volume
from airvoice.cloud.pods import create_pod_or_clean_up, remove_pod
from airvoice.cloud.progress import Reporter
from airvoice.cloud.runpod import RunPodClient
from airvoice.cloud.specs import (
    HF_HOME,
    PREFETCH_FAILED,
    PREFETCH_OK,
    HfCredential,
    prefetch_pod_request,
)
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
    hf: HfCredential = field(default_factory=HfCredential)
    name: str = "airvoice-prefetch"
    """The pod's name: unique per run (a lost create answer is resolved by looking it up)."""
    deployment: str = "airvoice"
    registry: str | None = None


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
    pod = None
    with reporter.phase(f"placing a CPU pod to fetch {job.preset} in {volume.data_center}"):
        for cpu_id in cpu_candidates(data_center):
            body = prefetch_pod_request(
                name=job.name,
                image=job.image,
                preset=job.preset,
                volume_id=volume.id,
                data_center=volume.data_center,
                cpu_id=cpu_id,
                hf=job.hf,
                deployment=job.deployment,
                registry=job.registry,
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
            for event in cursor.poll(until=_decisive):
                line = event.line.strip()
                if line == PREFETCH_OK:
                    return
                if line == PREFETCH_FAILED:
                    raise _failed(f"the prefetch on pod {pod_id} failed", cursor)
                cannot_start = start_failure(line)
                if cannot_start:
                    raise PrefetchError(
                        f"the prefetch pod {pod_id} cannot start: {cannot_start}.\n" + _tail(cursor)
                    )
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


def _decisive(event: LogEvent) -> bool:
    line = event.line.strip()
    return line in (PREFETCH_OK, PREFETCH_FAILED) or start_failure(line) is not None


def _tail(cursor: LogCursor) -> str:
    tail = "\n".join(f"  | {line}" for line in cursor.tail()) or "  (no log lines)"
    return f"Last lines of its log:\n{tail}"


_CAUSES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("Permission denied", "[Errno 13]", "Read-only file system", "[Errno 30]"),
        f"the network volume is not writable by the image's user: {HF_HOME} could not be "
        "created on the root-owned mount. Use an image of this release (its entrypoint "
        "prepares the cache directory, then drops privileges); HF_TOKEN is not the problem.",
    ),
    (
        ("No space left on device", "[Errno 28]"),
        "the network volume is full: deploy again with a larger --volume-size (volumes grow, "
        "never shrink).",
    ),
    (
        ("no Hugging Face token was given",),
        "no Hugging Face token reached the prefetch pod, and the weights are gated: set "
        "HF_TOKEN, or store it as a RunPod secret and pass --hf-secret NAME.",
    ),
    (
        ("rejected the Hugging Face token",),
        "the hub rejected the Hugging Face token (invalid or expired): create a new read token "
        "at https://huggingface.co/settings/tokens and set HF_TOKEN (or update the RunPod "
        "secret given with --hf-secret).",
    ),
    (
        ("has not been granted access",),
        "the token is valid but its account has not been granted the gated model: accept its "
        "licence on huggingface.co (approval can take hours), then deploy again.",
    ),
    (
        ("the hub answered 5", "was interrupted"),
        "the Hugging Face hub or the network failed mid-download: deploy again; what was "
        "fetched is kept and partial files resume.",
    ),
)


def diagnose(lines: list[str]) -> str:
    """What the prefetch pod's log says really failed (the first cause found, last lines first)."""
    for line in reversed(lines):
        for needles, cause in _CAUSES:
            if any(needle in line for needle in needles):
                return cause
    return "the prefetch failed; its log below says why. Fix that and deploy again."


def _failed(what: str, cursor: LogCursor) -> PrefetchError:
    if not cursor.lines:
        cursor.poll()
    return PrefetchError(
        f"{what}: {diagnose(list(cursor.lines))}\n{_tail(cursor)}\n"
        "What was fetched is kept on the volume."
    )
