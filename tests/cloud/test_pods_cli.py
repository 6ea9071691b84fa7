"""``airvoice pods ...`` and ``airvoice volumes ...``: tables by default, ``--json`` parseable."""

from __future__ import annotations

import json
import time

from cloud_helpers import API_KEY, run_cli


def test_volumes_create_list_rm(fake):
    made = run_cli(
        "volumes", "create", "weights", "--data-center", "EU-RO-1", "--size", "25", "--json"
    )
    assert made.exit_code == 0, made.stderr
    volume = json.loads(made.stdout)
    assert volume["size_gb"] == 25 and volume["data_center"] == "EU-RO-1"
    listed = json.loads(run_cli("volumes", "list", "--json").stdout)
    assert [v["id"] for v in listed] == [volume["id"]]
    table = run_cli("volumes", "list")
    assert "weights" in table.stderr and "EU-RO-1" in table.stderr
    gone = run_cli("volumes", "rm", volume["id"], "--yes")
    assert gone.exit_code == 0 and fake.volumes == {}


def test_pods_list_status_stop_start_logs_rm(fake):
    pod_id = fake.add_pod(name="airvoice-x")
    listed = json.loads(run_cli("pods", "list", "--json").stdout)
    assert [(p["id"], p["status"], p["gpu"]) for p in listed] == [(pod_id, "RUNNING", "NVIDIA L4")]
    table = run_cli("pods", "list", "--api-key", API_KEY)
    assert pod_id in table.stderr and "RUNNING" in table.stderr and API_KEY not in table.stderr
    status = json.loads(run_cli("pods", "status", pod_id, "--json").stdout)
    assert status["cost_per_hour"] == 0.43
    stopped = json.loads(run_cli("pods", "stop", pod_id, "--json").stdout)
    assert stopped["status"] == "EXITED"
    started = run_cli("pods", "start", pod_id)
    assert started.exit_code == 0 and "PROVISIONING" in started.stderr
    time.sleep(0.6)
    logs = run_cli("pods", "logs", pod_id, "--tail", "10")
    assert logs.exit_code == 0 and "pulling image" in logs.stdout
    removed = run_cli("pods", "rm", pod_id, "--yes")
    assert removed.exit_code == 0 and fake.live_pods() == []


def test_missing_pod_and_missing_key_are_clear(fake, cloud_env):
    missing = run_cli("pods", "status", "nope")
    assert missing.exit_code == 1 and "pods list" in missing.stderr
    cloud_env.delenv("RUNPOD_API_KEY")
    nokey = run_cli("pods", "list")
    assert nokey.exit_code == 1 and "No RunPod API key" in nokey.stderr
    assert "Traceback" not in nokey.stderr + nokey.stdout
