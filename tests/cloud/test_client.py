"""The RunPod client against the fake: every call, typed errors, retries, the key kept secret."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from cloud_helpers import API_KEY

from airvoice.cloud import errors
from airvoice.cloud.credentials import ApiKey, resolve_api_key
from airvoice.cloud.errors import error_from_problem
from airvoice.cloud.gpus import UnknownGpuError, resolve_gpu
from airvoice.cloud.runpod import RetryPolicy, RunPodClient
from airvoice.cloud.specs import HfCredential, prefetch_pod_request, volume_request

FAST_RETRY = RetryPolicy(attempts=3, backoff_seconds=0.01)


@pytest.fixture
def client(fake):
    with RunPodClient(ApiKey(API_KEY, "test"), fake.base_url, retry=FAST_RETRY) as c:
        yield c


def test_api_key_sources_in_order(cloud_env, tmp_path):
    config = tmp_path / "home" / ".runpod" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[default]\napi_key = "from-config"\n')
    assert resolve_api_key().reveal() == "from-config"
    cloud_env.setenv("RUNPOD_API_KEY", "from-env")
    assert resolve_api_key().reveal() == "from-env"
    key = resolve_api_key("from-flag")
    assert key.reveal() == "from-flag" and "from-flag" not in repr(key) + str(key)
    cloud_env.delenv("RUNPOD_API_KEY")
    config.unlink()
    with pytest.raises(errors.MissingApiKeyError, match="RUNPOD_API_KEY"):
        resolve_api_key()


def test_gpu_names():
    assert resolve_gpu("L4").runpod_id == "NVIDIA L4"
    assert resolve_gpu("rtx 4090").runpod_id == "NVIDIA GeForce RTX 4090"
    assert resolve_gpu("NVIDIA RTX A5000").name == "A5000"
    assert resolve_gpu("l40s").runpod_id == "NVIDIA L40S"
    with pytest.raises(UnknownGpuError, match="Choose one of: L4"):
        resolve_gpu("K80")


def test_pods_volumes_catalog_and_logs(fake, client):
    gpu = client.get_gpu_type("NVIDIA L4")
    assert gpu.price_secure == pytest.approx(0.43) and gpu.data_centers["EU-RO-1"] == "HIGH"
    assert {g.id for g in client.list_gpu_types()} >= {"NVIDIA L4"}
    centers = {d.id: d for d in client.list_data_centers(cpus=True)}
    assert centers["EU-RO-1"].cpus["cpu3c"] == "HIGH"
    assert client.list_cpu_types()[0]["id"] == "cpu3c"

    volume = client.create_volume(volume_request("v", 10, "EU-RO-1"))
    assert client.grow_volume(volume.id, 20).size_gb == 20
    assert [v.id for v in client.list_volumes()] == [volume.id]
    assert client.get_volume(volume.id).name == "v"

    pod = client.create_pod(
        prefetch_pod_request(
            name="p",
            image="img",
            preset="ultravox-1b",
            volume_id=volume.id,
            data_center="EU-RO-1",
            cpu_id="cpu3c",
            hf=HfCredential(token="hf"),
        )
    )
    assert pod.status == "PROVISIONING"
    deadline = time.monotonic() + 5
    while client.get_pod(pod.id).status != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    lines = [e.line for e in client.tail_logs(pod.id, idle_seconds=0.3)]
    assert lines[0] == "create container img" and lines[-1] == "AIRVOICE_PREFETCH_OK"
    assert "pulling image img" in lines
    with client.pod_log_stream(pod.id, tail=2, read_timeout=0.3) as stream:
        first = []
        with pytest.raises(httpx.ReadTimeout):
            for event in stream:
                first.append(event)
    assert [e.line for e in first] == lines[-2:]
    assert client.stop_pod(pod.id).status == "EXITED"
    with pytest.raises(errors.ConflictError):
        client.stop_pod(pod.id)
    assert client.start_pod(pod.id).status == "PROVISIONING"
    with pytest.raises(errors.BadRequestError, match="in use"):
        client.delete_volume(volume.id)
    client.terminate_pod(pod.id)
    assert client.list_pods() == []
    with pytest.raises(errors.NotFoundError):
        client.get_pod(pod.id)
    client.delete_volume(volume.id)
    assert client.list_volumes() == []


def test_bad_key_is_401_with_advice(fake):
    with RunPodClient(ApiKey("rpa_nope", "test"), fake.base_url, retry=FAST_RETRY) as bad:
        with pytest.raises(errors.AuthenticationError) as info:
            bad.list_pods()
    message = str(info.value)
    assert "401" in message and "--api-key" in message and "rpa_nope" not in message


def test_429_waits_for_retry_after(fake, faults, client):
    faults.rate_limit_once["listPods"] = 1
    waits = []
    with RunPodClient(
        ApiKey(API_KEY, "t"), fake.base_url, retry=FAST_RETRY, on_wait=waits.append
    ) as c:
        started = time.monotonic()
        assert c.list_pods() == []
    assert time.monotonic() - started >= 1.0
    assert "Retry-After 1 s" in waits[0]
    assert [s for op, _, s in fake.calls if op == "listPods"] == [429, 200]


def test_too_long_retry_after_is_an_error(fake, faults):
    faults.rate_limit_once["listPods"] = 600
    with RunPodClient(ApiKey(API_KEY, "t"), fake.base_url, retry=FAST_RETRY) as c:
        with pytest.raises(errors.RateLimitedError, match="rate limit"):
            c.list_pods()


def test_5xx_is_retried_then_bounded(fake, faults, client):
    faults.server_error_once.add("listNetworkVolumes")
    assert client.list_volumes() == []
    assert [s for op, _, s in fake.calls if op == "listNetworkVolumes"] == [500, 200]


def test_unreachable_api_is_bounded(cloud_env):
    with RunPodClient(ApiKey("k", "t"), "http://127.0.0.1:9/v2", retry=FAST_RETRY) as c:
        with pytest.raises(errors.TransportError, match="could not reach RunPod"):
            c.list_pods()


def test_no_capacity_is_recognised(fake, faults, client):
    volume = client.create_volume(volume_request("v", 10, "EU-RO-1"))
    faults.no_gpu_capacity_in.add("EU-RO-1")
    body = {
        "name": "x",
        "image": "img",
        "gpu": {"id": "NVIDIA L4", "count": 1},
        "dataCenterIds": ["EU-RO-1"],
        "mounts": {"network": [{"volumeId": volume.id, "path": "/workspace"}]},
    }
    with pytest.raises(errors.BadRequestError) as info:
        client.create_pod(body)
    assert info.value.no_capacity
    client.delete_volume(volume.id)


@pytest.mark.parametrize(
    ("status", "cls", "advice"),
    [
        (401, errors.AuthenticationError, "RUNPOD_API_KEY"),
        (402, errors.PaymentRequiredError, "Add credit"),
        (403, errors.PermissionDeniedError, "read/write access"),
        (422, errors.RequestRejectedError, "bug in airvoice"),
        (503, errors.ServerError, "status.runpod.io"),
    ],
)
def test_problem_json_errors_say_what_to_do(status, cls, advice):
    problem = {"title": "T", "status": status, "detail": "why", "errors": ["$.gpu: bad"]}
    error = error_from_problem(status, problem, "createPod")
    assert isinstance(error, cls)
    text = str(error)
    assert "createPod" in text and "why" in text and advice in text
    if status == 422:
        assert "$.gpu: bad" in text


def test_the_fake_rejects_what_the_document_rejects(fake):
    """The contract check is real: a request off the document is a 422 and a violation."""
    response = httpx.post(
        f"{fake.base_url}/pods",
        json={"name": "x", "image": "i", "gpu": {"id": "NVIDIA L4"}, "bogus": 1},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "bogus" in json.dumps(response.json()["errors"])
    assert any("bogus" in v for v in fake.violations)
    fake.violations.clear()


def test_the_key_never_reaches_logs_or_reprs(fake, client, caplog):
    caplog.set_level(logging.DEBUG)
    client.list_pods()
    assert API_KEY not in caplog.text and API_KEY not in repr(client)
    assert fake.seen_authorization[-1] == f"Bearer {API_KEY}"
