"""Pod lifecycle helpers the workflows share: create without orphans, find a deployment's pods,
remove for good."""

from __future__ import annotations

import contextlib
from typing import Any

from airvoice.cloud.errors import NotFoundError, RunPodError, TransportError
from airvoice.cloud.models import Pod
from airvoice.cloud.runpod import RunPodClient


def create_pod_or_clean_up(client: RunPodClient, body: dict[str, Any]) -> Pod:
    """Create a pod (a lost answer is resolved by its unique name, see ``create_pod``); if it
    still fails without an answer, remove any pod of that name, then raise."""
    try:
        return client.create_pod(body)
    except TransportError:
        with contextlib.suppress(RunPodError):
            for pod in client.list_pods():
                if pod.name == body["name"]:
                    remove_pod(client, pod.id)
        raise


def remove_pod(client: RunPodClient, pod_id: str) -> None:
    """Terminate and delete ``pod_id``; a pod already gone is fine."""
    with contextlib.suppress(NotFoundError):
        client.delete_pod(pod_id)


def deployment_pods(client: RunPodClient, deployment: str) -> list[Pod]:
    """Every pod of the deployment named ``deployment`` (its ``AIRVOICE_DEPLOYMENT`` env)."""
    return [p for p in client.list_pods() if p.deployment == deployment]
