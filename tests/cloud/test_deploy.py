"""``airvoice deploy`` end to end against the fake RunPod, with a real airvoice server
answering /health and /ws in place of RunPod's proxy; every fault and its clean-up."""

from __future__ import annotations

import json
import time
import wave

import numpy as np
import pytest
from cloud_helpers import API_KEY, FAST, HF_TOKEN, SERVER_TOKEN, VOICE, deploy_json, run_cli

from airvoice.cloud.specs import PREFETCH_OK


def env_device(pod):
    return pod["env"].get("AIRVOICE_DEVICE")


def _gpu_pods(fake, include_deleted=False):
    pods = fake.live_pods() + (fake.deleted if include_deleted else [])
    return [p for p in pods if "gpu" in p]


def test_deploy_end_to_end_and_say_through_the_endpoint(
    fake, proxy_to_server, cloud_engines, tmp_path
):
    code, result, err = deploy_json("--gpu", "L4", "--token", SERVER_TOKEN, "--timeout", "1")
    assert code == 0, err
    assert result["endpoint"] == f"ws://127.0.0.1:{proxy_to_server}/ws"
    assert result["token"] == SERVER_TOKEN
    assert result["gpu"] == "NVIDIA L4" and result["data_center"] == "EU-RO-1"
    assert result["cost_per_hour"] == pytest.approx(0.43)
    assert result["prefetch"] == "CPU pod"
    assert result["talk_command"] == f"airvoice talk {result['endpoint']} --token {SERVER_TOKEN}"

    # The fake's state: one GPU pod running, the prefetch pod removed, the volume sized.
    (pod,) = fake.live_pods()
    assert pod["id"] == result["pod_id"] and pod["status"] == "RUNNING"
    assert pod["ports"] == ["8000/http"]
    # Ready although RunPod never lists an HTTP port at runtime (only TCP mappings).
    assert all(p["type"] == "tcp" for p in pod["runtime"]["ports"])
    assert result["deployment"] == "airvoice" and pod["env"]["AIRVOICE_DEPLOYMENT"] == "airvoice"
    assert env_device(pod) == "cuda" and pod["env"]["AIRVOICE_IDLE_ACTION"] == "terminate"
    assert pod["mounts"] == {"network": [{"volumeId": result["volume_id"], "path": "/workspace"}]}
    env = pod["env"]
    assert "HF_TOKEN" not in env, "the serving pod must never see HF_TOKEN"
    assert env["AIRVOICE_TOKEN"] == SERVER_TOKEN and env["AIRVOICE_IDLE_SHUTDOWN_MINUTES"] == "30"
    assert env["AIRVOICE_ULTRAVOX"] == "fixie-ai/ultravox-v0_5-llama-3_1-8b"
    assert env["HF_HOME"] == "/workspace/hf"
    (prefetch,) = fake.deleted
    assert "cpu" in prefetch and prefetch["env"]["HF_TOKEN"] == HF_TOKEN
    assert prefetch["args"].startswith("models prefetch --preset ultravox-8b")
    assert prefetch["env"]["HF_HUB_OFFLINE"] == "0"
    (volume,) = fake.volumes.values()
    assert volume["name"] == "airvoice-models" and volume["size"] == 30

    # The printed endpoint works: `airvoice say` asks a question and gets speech back.
    import soxr

    pcm24 = cloud_engines.kokoro.synthesize("What is the weather like in Paris?", VOICE)
    pcm16 = soxr.resample(pcm24.astype(np.float32), 24000, 16000)
    question, reply = tmp_path / "q.wav", tmp_path / "r.wav"
    with wave.open(str(question), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(pcm16, -32768, 32767).astype(np.int16).tobytes())
    said = run_cli(
        "say",
        result["endpoint"],
        "--in",
        str(question),
        "--out",
        str(reply),
        "--token",
        result["token"],
        "--timeout",
        "60",
    )
    assert said.exit_code == 0, said.output
    with wave.open(str(reply), "rb") as w:
        assert w.getnframes() > 2400


def test_human_output_shows_endpoint_token_cost_and_command_never_the_key(fake, proxy_to_server):
    result = run_cli("deploy", *FAST, "--token", SERVER_TOKEN, "--timeout", "1")
    assert result.exit_code == 0, result.stderr
    text = result.stdout + result.stderr
    endpoint = f"ws://127.0.0.1:{proxy_to_server}/ws"
    assert result.stdout.strip() == endpoint
    assert SERVER_TOKEN in text and "$0.43/hour" in text
    assert f"airvoice talk {endpoint} --token {SERVER_TOKEN}" in text
    assert "airvoice pods down --name airvoice" in text
    assert "fetching ultravox-8b" in text or "fetching" in text
    assert API_KEY not in text and HF_TOKEN not in text


def test_no_capacity_in_the_first_data_center_moves_on(fake, faults, proxy_to_server):
    faults.no_gpu_capacity_in.add("EU-RO-1")
    code, result, err = deploy_json("--timeout", "1", "--token", SERVER_TOKEN)
    assert code == 0, err
    assert result["data_center"] == "US-KS-2"
    statuses = [(op, s) for op, _, s in fake.calls if op == "createPod"]
    assert (("createPod", 400)) in statuses and statuses[-1] == ("createPod", 201)
    assert [p["id"] for p in fake.live_pods()] == [result["pod_id"]]


def test_rate_limit_waits_as_retry_after_says(fake, faults, proxy_to_server):
    faults.rate_limit_once["createNetworkVolume"] = 1
    started = time.monotonic()
    code, _, err = deploy_json("--timeout", "1", "--token", SERVER_TOKEN)
    assert code == 0, err
    calls = [s for op, _, s in fake.calls if op == "createNetworkVolume"]
    assert calls == [429, 201]
    assert time.monotonic() - started >= 1.0


def test_a_500_is_retried(fake, faults, proxy_to_server):
    faults.server_error_once.update({"getPod", "listNetworkVolumes"})
    code, _, err = deploy_json("--timeout", "1", "--token", SERVER_TOKEN)
    assert code == 0, err
    assert ("getPod", 500) in [(op, s) for op, _, s in fake.calls]
    assert len(fake.live_pods()) == 1


def test_pod_in_error_fails_with_the_log_tail_and_is_removed(fake, faults, proxy_to_server):
    faults.gpu_pod_error = True
    code, _, err = deploy_json("--timeout", "1")
    assert code == 1
    assert "went to ERROR" in err and "exec format error" in err and "was removed" in err
    assert fake.live_pods() == []
    assert len(_gpu_pods(fake, include_deleted=True)) == 1


def test_slow_image_pull_times_out_and_leaves_nothing(fake, faults, proxy_to_server):
    faults.slow_image_pull_seconds = 30
    started = time.monotonic()
    code, _, err = deploy_json("--timeout", "0.02")  # 1.2 s
    assert code == 1
    assert "was not running after" in err and "pulling image" in err
    assert fake.live_pods() == []
    assert time.monotonic() - started < 20


@pytest.mark.parametrize(
    ("kind", "says", "not_said"),
    [
        ("not-writable", "not writable by the image's user", "gated"),
        ("bad-token", "rejected the Hugging Face token", "not writable"),
        ("not-granted", "has not been granted the gated model", "not writable"),
    ],
)
def test_a_failed_prefetch_says_what_really_failed(
    fake, faults, proxy_to_server, kind, says, not_said
):
    faults.prefetch_fails = kind
    code, _, err = deploy_json("--timeout", "1")
    assert code == 1
    headline = err.split("Last lines")[0]
    assert says in headline and not_said not in headline, err
    assert "AIRVOICE_PREFETCH_FAILED" in err  # the log tail is shown too
    assert fake.live_pods() == [] and _gpu_pods(fake, include_deleted=True) == []
    assert HF_TOKEN not in err


def test_no_cpu_pod_falls_back_to_download_on_the_gpu_pod(fake, faults, proxy_to_server):
    faults.no_cpu_capacity_in.update({"EU-RO-1", "US-KS-2"})
    code, result, err = deploy_json("--timeout", "1", "--token", SERVER_TOKEN)
    assert code == 0, err
    assert result["prefetch"] == "on the GPU pod"
    (pod,) = fake.live_pods()
    assert pod["args"] == "serve --download-missing"
    assert pod["env"]["HF_TOKEN"] == HF_TOKEN


def test_reuses_the_volume_by_name_and_grows_it(fake, proxy_to_server):
    run_cli("volumes", "create", "airvoice-models", "--data-center", "US-KS-2", "--size", "10")
    code, result, err = deploy_json("--timeout", "1", "--token", SERVER_TOKEN)
    assert code == 0, err
    assert result["data_center"] == "US-KS-2"  # the volume pins the data center
    (volume,) = fake.volumes.values()
    assert volume["size"] == 30 and volume["id"] == result["volume_id"]
    assert [op for op in fake.operations() if op == "updateNetworkVolume"] == [
        "updateNetworkVolume"
    ]
    # A second deploy with --skip-prefetch starts no CPU pod.
    cpu_pods = lambda: [p for p in fake.deleted + fake.live_pods() if "cpu" in p]  # noqa: E731
    before = len(cpu_pods())
    code, again, err = deploy_json(
        "--timeout", "1", "--skip-prefetch", "--token", SERVER_TOKEN, "--replace"
    )
    assert code == 0, err
    assert again["volume_id"] == result["volume_id"] and len(cpu_pods()) == before
    assert again["prefetch"] == "skipped"


def test_every_candidate_refused_leaves_no_pod_and_no_volume(fake, faults, proxy_to_server):
    faults.no_gpu_capacity_in.update({"EU-RO-1", "US-KS-2"})
    code, _, err = deploy_json("--timeout", "1")
    assert code == 1
    assert "no candidate could place" in err and "EU-RO-1" in err and "US-KS-2" in err
    assert fake.live_pods() == []
    creates = [s for op, _, s in fake.calls if op == "createPod" and s == 400]
    assert len(creates) == 2  # one per data center with stock on new-enough drivers
    # Each volume it filled where the GPU could not be placed was removed, and it says so.
    assert len(fake.bodies("createNetworkVolume")) == 2 and fake.volumes == {}
    assert err.count("could not be placed in") == 2 and "Removed what this deploy created" in err


def test_a_failed_deploy_keeps_a_volume_that_existed_and_says_so(fake, faults, proxy_to_server):
    made = run_cli("volumes", "create", "airvoice-models", "--data-center", "US-KS-2", "--json")
    existing = json.loads(made.stdout)["id"]
    faults.gpu_pod_error = True
    code, _, err = deploy_json("--timeout", "1", "--skip-prefetch")
    assert code == 1
    assert list(fake.volumes) == [existing] and fake.live_pods() == []
    assert f"Kept: network volume airvoice-models ({existing}, US-KS-2), which existed" in err


def test_unknown_gpu_lists_the_choices(cloud_env):
    result = run_cli("deploy", "--gpu", "V100", "--dry-run")
    assert result.exit_code == 1
    assert "unknown GPU 'V100'" in result.stderr and "L4" in result.stderr
    assert "A5000" in result.stderr and "H100" in result.stderr
    assert "any RunPod GPU id" in result.stderr


def test_bad_api_key_is_a_clear_error_without_the_key(fake, cloud_env):
    cloud_env.setenv("RUNPOD_API_KEY", "rpa_WRONG_key_secret")
    code, _, err = deploy_json("--timeout", "1")
    assert code == 1
    assert "401" in err and "RUNPOD_API_KEY" in err
    assert "rpa_WRONG_key_secret" not in err and fake.live_pods() == []


def test_dry_run_needs_no_key_is_stable_and_valid(cloud_env):
    from airvoice.testing.fakerunpod import OpenApiValidator

    args = ["deploy", "--dry-run", "--json", "--gpu", "4090", "--data-center", "US-KS-2"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.exit_code == 0, first.stderr
    assert first.stdout == second.stdout
    plan = json.loads(first.stdout)
    assert plan["dry_run"] is True and plan["steps"]
    validator = OpenApiValidator()
    api = [r for r in plan["requests"] if r["url"].startswith("https://api.runpod.io/v2/")]
    assert len(api) >= 9
    for request in api:
        assert validator.check_planned(request["method"], request["url"], request.get("body")) == []
    gpu_pod = next(r for r in api if r["method"] == "POST" and "gpu" in (r.get("body") or {}))
    assert gpu_pod["body"]["gpu"]["id"] == "NVIDIA GeForce RTX 4090"
    assert "HF_TOKEN" not in gpu_pod["body"]["env"]
    assert plan["requests"][-1]["url"] == "https://<pod id>-8000.proxy.runpod.net/health"
    text = run_cli("deploy", "--dry-run", "--preset", "ultravox-1b")
    assert text.exit_code == 0 and "POST https://api.runpod.io/v2/pods" in text.stdout


def test_dry_run_never_shows_the_hf_token(cloud_env):
    cloud_env.setenv("HF_TOKEN", HF_TOKEN)
    result = run_cli("deploy", "--dry-run", "--json")
    assert result.exit_code == 0
    assert HF_TOKEN not in result.stdout + result.stderr and "<HF_TOKEN>" in result.stdout


def test_dry_run_without_prefetch_has_no_cpu_pod(cloud_env):
    plan = json.loads(run_cli("deploy", "--dry-run", "--json", "--skip-prefetch").stdout)
    assert not any("cpu" in (r.get("body") or {}) for r in plan["requests"])


def test_prefetch_command_prints_the_marker_the_fake_prints():
    from airvoice.cloud.specs import prefetch_command

    # `--then-idle` prints PREFETCH_OK / PREFETCH_FAILED (tests/models/test_prefetch_pod_marker.py).
    assert prefetch_command("ultravox-8b").endswith(" --then-idle")
    assert PREFETCH_OK == "AIRVOICE_PREFETCH_OK"


def test_a_gpu_too_small_for_the_preset_is_refused_before_any_request(cloud_env):
    result = run_cli("deploy", "--gpu", "A4000", "--preset", "ultravox-8b", "--dry-run")
    assert result.exit_code == 1
    assert "16 GB" in result.output and "--preset ultravox-1b" in result.output
    assert "L4" in result.output and "Traceback" not in result.output
    small = run_cli("deploy", "--gpu", "A4000", "--preset", "ultravox-1b", "--dry-run")
    assert small.exit_code == 0, small.output
