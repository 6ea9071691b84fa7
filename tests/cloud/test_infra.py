"""``infra/runpod/*.json`` match what the code sends and RunPod's OpenAPI document accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cloud_helpers import SETTINGS

from airvoice.cloud.specs import (
    DEFAULT_IMAGE,
    HfCredential,
    gpu_pod_request,
    prefetch_pod_request,
    volume_request,
)
from airvoice.testing.fakerunpod import OpenApiValidator

INFRA = Path(__file__).resolve().parents[2] / "infra" / "runpod"
EXPECTED = {
    "network-volume.json": (
        "/v2/network-volumes",
        volume_request("airvoice-models", 30, "<data center>"),
    ),
    "prefetch-pod.json": (
        "/v2/pods",
        prefetch_pod_request(
            name="airvoice-prefetch",
            image=DEFAULT_IMAGE,
            preset="ultravox-8b",
            volume_id="<volume id>",
            data_center="<data center>",
            cpu_id="cpu3c",
            hf=HfCredential(secret="hf_token"),
        ),
    ),
    "gpu-pod.json": (
        "/v2/pods",
        gpu_pod_request(
            name="airvoice-ultravox-8b",
            image=DEFAULT_IMAGE,
            gpu_id="NVIDIA L4",
            cloud="SECURE",
            data_center="<data center>",
            volume_id="<volume id>",
            settings=SETTINGS,
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_infra_file_matches_code_and_document(name):
    path, body = EXPECTED[name]
    on_disk = json.loads((INFRA / name).read_text())
    assert on_disk == body, f"regenerate {name} from airvoice/cloud/specs.py"
    validator = OpenApiValidator()
    assert validator.check_planned("POST", f"https://api.runpod.io{path}", on_disk) == []
