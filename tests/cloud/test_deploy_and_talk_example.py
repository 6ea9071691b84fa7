"""``examples/deploy_and_talk.sh`` end to end: deploy on the fake RunPod, then ``airvoice say``
through the endpoint it printed (a real airvoice server stands in for RunPod's proxy), then
stop the pod. The script's processes may reach loopback only."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
from cloud_helpers import API_KEY, HF_TOKEN, SERVER_TOKEN

from airvoice.client import write_wav
from airvoice.testing.network import loopback_only_env
from airvoice.testing.server import spoken

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "deploy_and_talk.sh"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # The fixtures' RUNPOD_API_KEY, HF_TOKEN and fake URLs stay in the environment.
    return loopback_only_env(tmp_path / "guard", PYTHON=sys.executable, **extra)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_deploy_and_talk_script_deploys_answers_and_stops(
    fake, proxy_to_server, cloud_engines, tmp_path
):
    question, reply = tmp_path / "question.wav", tmp_path / "reply.wav"
    speech = spoken(cloud_engines)
    write_wav(question, np.concatenate([speech, np.zeros(16000, np.int16)]), 16000)
    env = _env(
        tmp_path,
        QUESTION_WAV=str(question),
        REPLY_WAV=str(reply),
        STOP_WHEN_DONE="1",
        GPU="L4",
    )
    done = _run(env, "--token", SERVER_TOKEN, "--timeout", "1", "--poll-interval", "0.05")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    assert f"live: ws://127.0.0.1:{proxy_to_server}/ws" in done.stderr
    with wave.open(str(reply)) as f:
        assert f.getframerate() == 24000 and f.getnframes() > 24000 * 0.2
    # The pod was created with the script's choices, then stopped by it.
    gpu_pods = [p for p in fake.live_pods() if "gpu" in p]
    assert len(gpu_pods) == 1 and gpu_pods[0]["gpu"]["id"] == "NVIDIA L4"
    assert gpu_pods[0]["status"] == "EXITED"
    for secret in (API_KEY, HF_TOKEN, SERVER_TOKEN):
        assert secret not in output


def test_deploy_and_talk_script_without_a_key_stops_before_anything(cloud_env, tmp_path):
    env = _env(tmp_path)
    env.pop("RUNPOD_API_KEY", None)
    done = _run(env)
    assert done.returncode != 0
    assert "set RUNPOD_API_KEY" in done.stderr
