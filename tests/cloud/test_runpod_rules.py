"""``airvoice deploy`` against what RunPod really does (issue 14): CUDA hosts, HTTP ports never
in ``runtime.ports``, private images, lost create answers, orphan volumes, secrets, existing
deployments, any GPU id, regions and countries, Community Cloud, one teardown command."""

from __future__ import annotations

import json
import time

from cloud_helpers import API_KEY, HF_TOKEN, SERVER_TOKEN, deploy_json, image_cuda, run_cli

from airvoice.cloud.credentials import ApiKey
from airvoice.cloud.runpod import RetryPolicy, RunPodClient
from airvoice.cloud.specs import DEFAULT_IMAGE, MIN_CUDA_VERSION

FAST = ["--timeout", "1", "--token", SERVER_TOKEN]


def _cuda(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def _gpu_bodies(fake) -> list[dict]:
    return [b for b in fake.bodies("createPod") if "gpu" in b]


def test_the_fake_answers_like_the_documents_examples(fake):
    """createPod answers ``runtime: {}``; a RUNNING pod lists only TCP mappings at runtime."""
    with RunPodClient(ApiKey(API_KEY, "t"), fake.base_url) as client:
        created = client.create_pod(
            {
                "name": "ports",
                "image": "img",
                "gpu": {"id": "NVIDIA L4", "count": 1, "minCudaVersion": MIN_CUDA_VERSION},
                "dataCenterIds": ["EU-RO-1"],
                "ports": ["8888/http", "22/tcp"],
            }
        )
        assert created.raw["runtime"] == {} and created.status == "PROVISIONING"
        deadline = time.monotonic() + 5
        while (pod := client.get_pod(created.id)).status != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert pod.raw["ports"] == ["8888/http", "22/tcp"]
    assert [(p["private"], p["type"]) for p in pod.runtime_ports] == [(22, "tcp")]
    assert _cuda(pod.cuda_version) >= _cuda(MIN_CUDA_VERSION)  # a host meeting the floor


def test_min_cuda_version_is_the_images_cuda():
    """The floor sent to RunPod is the CUDA build of the image's torch (the Dockerfile's)."""
    assert image_cuda() == MIN_CUDA_VERSION


def test_the_gpu_pod_runs_on_a_driver_new_enough_for_the_image(fake, proxy_to_server):
    # CA-MTL-1 has L4 stock, but only on hosts reporting CUDA 12.2; it sorts first and even
    # holds a volume of the right name: no prefetch, no pod goes there.
    made = run_cli("volumes", "create", "airvoice-models", "--data-center", "CA-MTL-1", "--json")
    assert made.exit_code == 0, made.stderr
    code, result, err = deploy_json(*FAST)
    assert code == 0, err
    (catalog,) = [q for op, q, _ in fake.requests if op == "getGpuType"]
    assert catalog["minCudaVersion"] == MIN_CUDA_VERSION and catalog["product"] == "POD"
    (body,) = _gpu_bodies(fake)
    assert body["gpu"]["minCudaVersion"] == MIN_CUDA_VERSION
    assert body["env"]["AIRVOICE_DEVICE"] == "cuda"  # a GPU failure is loud, never the CPU
    assert result["data_center"] != "CA-MTL-1"
    assert all(b["dataCenterIds"] != ["CA-MTL-1"] for b in fake.bodies("createPod"))
    assert _cuda(result["cuda_version"]) >= _cuda(image_cuda())


def test_a_private_image_needs_registry_auth_and_fails_fast_without_it(
    fake, faults, proxy_to_server
):
    faults.private_images.add(DEFAULT_IMAGE)
    fake.registries.add("reg_ghcr")
    code, result, err = deploy_json(*FAST, "--registry-auth", "reg_ghcr")
    assert code == 0, err
    assert {b.get("registry") for b in fake.bodies("createPod")} == {"reg_ghcr"}

    started = time.monotonic()
    code, _, err = deploy_json(*FAST, "--name", "other", "--skip-prefetch")
    assert code == 1
    assert time.monotonic() - started < 15  # not the whole --timeout of 1 min
    assert "cannot pull the image" in err and "pull access denied" in err
    assert "--registry-auth" in err and "was removed" in err
    assert [p["id"] for p in fake.live_pods()] == [result["pod_id"]]

    # The prefetch pod too: it stops at the first pull error, and no GPU pod is started.
    started = time.monotonic()
    code, _, err = deploy_json(*FAST, "--name", "third")
    assert code == 1 and time.monotonic() - started < 15
    assert "the prefetch pod" in err and "cannot pull the image" in err
    assert "No GPU pod was started" in err and len(_gpu_bodies(fake)) == 2
    assert [p["id"] for p in fake.live_pods()] == [result["pod_id"]]


def test_a_create_whose_answer_was_lost_makes_exactly_one(fake, faults, proxy_to_server):
    # Each create happens, then its answer is lost (gateway error): retrying blindly would
    # make a second billing volume or pod.
    faults.lost_answer_once.update({"createNetworkVolume": 504, "createPod": 502})
    code, result, err = deploy_json(*FAST)
    assert code == 0, err
    assert len(fake.volumes) == 1
    assert [p["id"] for p in fake.live_pods()] == [result["pod_id"]]
    assert len(fake.deleted) == 1  # the prefetch pod, found by its name, then removed
    statuses = [(op, s) for op, _, s in fake.calls if op.startswith("create")]
    assert ("createPod", 502) in statuses and ("createNetworkVolume", 504) in statuses

    # The GPU pod's create too.
    faults.lost_answer_once["createPod"] = 502
    with RunPodClient(
        ApiKey(API_KEY, "t"), fake.base_url, retry=RetryPolicy(attempts=3, backoff_seconds=0.01)
    ) as client:
        pod = client.create_pod(_gpu_bodies(fake)[0] | {"name": "airvoice-once"})
    assert [p["name"] for p in fake.live_pods()].count("airvoice-once") == 1
    assert pod.name == "airvoice-once"


def test_an_existing_deployment_is_refused_or_replaced(fake, proxy_to_server):
    old = fake.add_pod(name="airvoice-old", env={"AIRVOICE_DEPLOYMENT": "airvoice"})
    code, _, err = deploy_json(*FAST, "--skip-prefetch")
    assert code == 1
    assert "already has pods" in err and old in err and "--replace" in err
    assert [p["id"] for p in fake.live_pods()] == [old]
    assert fake.bodies("createPod") == [] and fake.volumes == {}

    code, result, err = deploy_json(*FAST, "--skip-prefetch", "--replace")
    assert code == 0, err
    assert [p["id"] for p in fake.live_pods()] == [result["pod_id"]]


def test_hf_token_can_come_from_a_runpod_secret(fake, cloud_env, proxy_to_server):
    cloud_env.delenv("HF_TOKEN")
    fake.secrets["hf_read"] = HF_TOKEN
    code, _, err = deploy_json(*FAST, "--hf-secret", "hf_read")
    assert code == 0, err
    (prefetch,) = fake.deleted
    assert prefetch["env"]["HF_TOKEN"] == "{{ RUNPOD_SECRET_hf_read }}"
    for body in fake.bodies("createPod"):
        assert HF_TOKEN not in json.dumps(body)

    # Without a token at all, the gated download fails and says so.
    code, _, err = deploy_json(*FAST, "--name", "no-token")
    assert code == 1 and "no Hugging Face token reached the prefetch pod" in err
    bad = run_cli("deploy", "--dry-run", "--hf-secret", "{{ bad }}")
    assert bad.exit_code == 2 and "not a RunPod secret name" in bad.stderr


def test_any_runpod_gpu_id_with_its_memory_from_the_catalog(fake, proxy_to_server):
    gpu = "NVIDIA RTX 5000 Ada Generation"
    code, result, err = deploy_json(*FAST, "--gpu", gpu, "--skip-prefetch")
    assert code == 0, err
    assert result["gpu"] == gpu and _gpu_bodies(fake)[0]["gpu"]["id"] == gpu

    small = "NVIDIA RTX 2000 Ada Generation"  # 16 GB in the catalog
    code, _, err = deploy_json(*FAST, "--gpu", small, "--name", "small")
    assert code == 1
    assert "has 16 GB of memory" in err and "--preset ultravox-1b" in err
    assert len(_gpu_bodies(fake)) == 1
    code, _, err = deploy_json(*FAST, "--gpu", "NVIDIA B999", "--name", "nope")
    assert code == 1 and "RunPod has no GPU type 'NVIDIA B999'" in err


def test_region_and_country_choose_where_the_pod_runs(fake, proxy_to_server):
    code, result, err = deploy_json(*FAST, "--country", "us", "--skip-prefetch", "--name", "us")
    assert code == 0, err
    assert result["data_center"] == "US-KS-2"  # EU-RO-1 has more stock, but is not in the US
    catalog = [q for op, q, _ in fake.requests if op == "getGpuType"][-1]
    assert catalog["countryCodes"] == "US"

    code, result, err = deploy_json(*FAST, "--region", "europe", "--skip-prefetch", "--name", "eu")
    assert code == 0, err
    assert result["data_center"] == "EU-RO-1"
    centers = [q for op, q, _ in fake.requests if op == "listDataCenters"][-1]
    assert centers["regions"] == "EUROPE"

    code, _, err = deploy_json(*FAST, "--region", "ASIA", "--name", "asia")
    assert code == 1 and "out of stock in regions ASIA" in err
    bad = run_cli("deploy", "--dry-run", "--country", "France")
    assert bad.exit_code == 2 and "two-letter ISO code" in bad.stderr


def test_community_cloud_downloads_on_the_pod_without_a_volume(fake, proxy_to_server):
    code, result, err = deploy_json(*FAST, "--cloud", "community")
    assert code == 0, err
    assert result["cloud"] == "COMMUNITY" and result["prefetch"] == "on the GPU pod"
    assert fake.volumes == {} and fake.bodies("createNetworkVolume") == []
    (pod,) = fake.live_pods()
    assert pod["cloud"] == "COMMUNITY" and pod["mounts"] == {}
    assert pod["args"] == "serve --download-missing" and pod["env"]["HF_TOKEN"] == HF_TOKEN
    assert pod["disk"] > 30  # the weights go to the container disk


def test_pods_down_removes_a_deployments_pods_and_volume(fake, proxy_to_server):
    code, result, err = deploy_json(*FAST)
    assert code == 0, err
    stray = fake.add_pod(
        name="airvoice-prefetch-x", env={"AIRVOICE_DEPLOYMENT": "airvoice"}, cpu=True
    )
    other = fake.add_pod(name="mine", env={"AIRVOICE_DEPLOYMENT": "someone-else"})
    kept = run_cli("pods", "down", "--yes")
    assert kept.exit_code == 0, kept.stderr
    assert [p["id"] for p in fake.live_pods()] == [other] and len(fake.volumes) == 1
    assert "volume stays" in kept.stderr

    code, result, err = deploy_json(*FAST, "--skip-prefetch")
    assert code == 0, err
    down = run_cli("pods", "down", "--volume", "--json")
    assert down.exit_code == 0, down.stderr
    report = json.loads(down.stdout)
    assert report["pods"] == [result["pod_id"]] and report["volumes"] == [result["volume_id"]]
    assert [p["id"] for p in fake.live_pods()] == [other] and fake.volumes == {}
    assert stray not in {p["id"] for p in fake.live_pods()}
