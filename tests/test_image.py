"""The image, built and run here with podman, as RunPod runs it.

``infra/docker/build-local.sh`` builds the real Dockerfile on the Debian stand-in for the Python
base, with this machine's CPU torch wheel. The container then runs on a root-owned directory
mounted at ``/workspace`` (what a RunPod network volume is): ``airvoice models prefetch`` fills
it from the fake hub on loopback, ``airvoice serve`` answers a spoken turn over ``/ws`` on those
weights with the hub gone, and the image's health check reports healthy. podman runs with runc,
bounded ulimits and the host's network, the flags these machines need.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr

from airvoice.engines.kokoro import KokoroEngine
from airvoice.testing.fakehub import FakeHub
from airvoice.testing.kokoro import build_kokoro_onnx, build_tiny_kmodel
from airvoice.testing.ultravox import build_tiny_ultravox
from airvoice.testing.wire import WireClient

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/airvoice:test"
BASE = "localhost/airvoice-python:3.11-slim-bookworm"
PODMAN = ["podman", "--runtime", "runc"]
FLAGS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096", "--network", "host"]

ULTRAVOX = "fixie-ai/ultravox-v0_5-llama-3_2-1b"
TEXT = "meta-llama/Llama-3.2-1B-Instruct"
KOKORO = "hexgrad/Kokoro-82M"
HF_TOKEN = "hf_ImageTestSecret0123456789abcdef"
SESSION_TOKEN = "image-session-token-0123456789"
APP_UID = 1000


def podman(*args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert done.returncode == 0, f"podman {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built by the project's script (cached layers make a rebuild quick)."""
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "docker" / "build-local.sh"), IMAGE],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE, check=True).stdout)
    print(f"\nimage built in {time.perf_counter() - started:.0f} s, {size / 1e9:.2f} GB")
    return IMAGE


@pytest.fixture
def names() -> Iterator[list[str]]:
    """Container names to remove at the end, whatever happened."""
    created: list[str] = []
    yield created
    for name in created:
        podman("rm", "--force", "--time", "5", name)


def _root_owned_workspace(tmp_path: Path) -> Path:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    os.chown(workspace, 0, 0)
    workspace.chmod(0o755)
    return workspace


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hub(tmp_path: Path) -> FakeHub:
    tiny = build_tiny_ultravox(tmp_path / "uv")
    hub = FakeHub()
    hub.add_repo(ULTRAVOX, tiny.ultravox_dir)
    hub.add_repo(TEXT, tiny.text_model_dir, gated=True)
    hub.add_repo(KOKORO, build_tiny_kmodel(tmp_path / "kokoro"))
    hub.add_token(HF_TOKEN, [TEXT])
    return hub.start()


def _question(tmp_path: Path) -> np.ndarray:
    """A spoken question as 16 kHz int16, by the real int8 Kokoro (the VAD needs speech)."""
    engine = KokoroEngine(build_kokoro_onnx(tmp_path / "onnx"), backend="onnx", device="cpu")
    pcm24 = engine.synthesize("What is the weather like in Paris today?", "jm_kumo")
    pcm16 = soxr.resample(pcm24.astype(np.float32), 24000, 16000)
    return np.clip(pcm16, -32768, 32767).astype(np.int16)


def _health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def _wait_healthy(name: str, port: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = _health(port)
        if body and body.get("status") == "ok":
            return
        state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
        if state != "running":
            logs = podman("logs", name)
            pytest.fail(f"the server exited ({state}):\n{logs.stdout}\n{logs.stderr}")
        time.sleep(1)
    logs = podman("logs", name)
    pytest.fail(f"/health not ok after {timeout} s:\n{logs.stdout}\n{logs.stderr}")


def _owners(folder: Path) -> set[int]:
    return {p.lstat().st_uid for p in [folder, *folder.rglob("*")]}


async def test_prefetch_then_serve_on_a_root_owned_volume(image, names, tmp_path):
    workspace = _root_owned_workspace(tmp_path)
    volume = ["--volume", f"{workspace}:/workspace"]
    hub = _hub(tmp_path)
    try:
        # The prefetch pod: the image's default user (root) and the volume, online for once.
        prefetch = f"airvoice-prefetch-{uuid.uuid4().hex[:8]}"
        names.append(prefetch)
        started = time.perf_counter()
        done = podman(
            "run", *FLAGS, "--name", prefetch, *volume,
            "--env", f"HF_ENDPOINT={hub.url}", "--env", f"HF_TOKEN={HF_TOKEN}",
            "--env", "HF_HUB_OFFLINE=0", "--env", "COLUMNS=200",
            image, "models", "prefetch", "--preset", "ultravox-1b", "--preset", "kokoro-82m",
            timeout=300,
        )  # fmt: skip
        output = done.stdout + done.stderr
        assert done.returncode == 0, output
        assert "All set" in output and HF_TOKEN not in output
        prefetch_seconds = time.perf_counter() - started
        assert any(r.authorized for r in hub.requests() if "/resolve/" in r.path)
    finally:
        hub.close()

    # The volume's root stays root's; the cache on it is the unprivileged user's, every file.
    assert workspace.stat().st_uid == 0
    assert _owners(workspace / "hf") == {APP_UID}
    assert (workspace / "hf" / "hub" / f"models--{KOKORO.replace('/', '--')}").is_dir()

    # The GPU pod: serve offline from the volume (the hub is gone), as its non-root user.
    server = f"airvoice-serve-{uuid.uuid4().hex[:8]}"
    names.append(server)
    port = _free_port()
    settings = {
        "AIRVOICE_HOST": "127.0.0.1",  # the host's network: loopback only
        "AIRVOICE_PORT": str(port),
        "AIRVOICE_TOKEN": SESSION_TOKEN,
        "AIRVOICE_ULTRAVOX": ULTRAVOX,
        "AIRVOICE_KOKORO": KOKORO,
        "AIRVOICE_VOICE": "af_tiny",
        "AIRVOICE_TTS_BACKEND": "torch",
        "AIRVOICE_DEVICE": "cpu",
        "AIRVOICE_SMART_TURN": "false",
        "AIRVOICE_SILENCE_TIMEOUT_SECONDS": "0.6",
        "AIRVOICE_MAX_NEW_TOKENS": "6",
    }
    env = [arg for key, value in settings.items() for arg in ("--env", f"{key}={value}")]
    started = time.perf_counter()
    podman("run", *FLAGS, "--detach", "--name", server, *volume, *env, image, check=True)
    speech = _question(tmp_path)
    _wait_healthy(server, port)
    ready_seconds = time.perf_counter() - started

    # The server runs as uid 1000 (the entrypoint dropped root), and the image's HEALTHCHECK
    # (infra/docker/healthcheck.py) says healthy.
    status = podman("exec", server, "cat", "/proc/1/status", check=True).stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [str(APP_UID)] * 4, status
    assert "NoNewPrivs:\t1" in status
    health = podman("healthcheck", "run", server)
    assert health.returncode == 0, health.stdout + health.stderr
    # (Without systemd, podman runs no health timer here: the check runs when asked.)
    assert podman("inspect", "--format", "{{.State.Health.Status}}", server).stdout == "healthy\n"

    # A spoken turn over /ws.
    url = f"ws://127.0.0.1:{port}/ws?token={SESSION_TOKEN}"
    async with WireClient.connect(url) as client:
        await client.stream_pcm(speech)
        await client.stream_silence(1.0)
        await client.wait_for_rtvi("bot-stopped-speaking", timeout=90)
        assert client.received.audio()

    # Stopping is clean (SIGTERM reaches the server itself), and no secret is in the logs.
    stop = podman("stop", "--time", "20", server, timeout=60)
    assert stop.returncode == 0, stop.stderr
    exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", server).stdout.strip()
    logs = podman("logs", server)
    assert exit_code == "0", logs.stdout + logs.stderr
    assert SESSION_TOKEN not in logs.stdout + logs.stderr
    assert HF_TOKEN not in logs.stdout + logs.stderr
    print(f"\nprefetch {prefetch_seconds:.1f} s; serve ready {ready_seconds:.1f} s")


def test_started_as_uid_1000_it_says_the_cache_is_not_writable(image, names, tmp_path):
    """Without root the entrypoint cannot fix the volume: it says what is wrong and what to do."""
    workspace = _root_owned_workspace(tmp_path)
    name = f"airvoice-user-{uuid.uuid4().hex[:8]}"
    names.append(name)
    done = podman(
        "run", *FLAGS, "--name", name, "--user", str(APP_UID),
        "--volume", f"{workspace}:/workspace", image, "--version",
    )  # fmt: skip
    assert "/workspace/hf is not writable by uid 1000" in done.stderr, done.stderr
    assert "Start the container as root" in done.stderr
    assert done.returncode == 0, done.stderr  # airvoice itself still runs
    assert not (workspace / "hf").exists()


def test_nothing_of_this_machine_is_in_the_image(image, names):
    """The build's mounts (CA bundle, pip settings, local wheels) left nothing behind."""

    def bundle_digest(ref: str) -> str:
        name = f"airvoice-look-{uuid.uuid4().hex[:8]}"
        names.append(name)
        done = podman(
            "run", *FLAGS, "--name", name, "--entrypoint", "cat", ref,
            "/etc/ssl/certs/ca-certificates.crt", check=True,
        )  # fmt: skip
        return hashlib.sha256(done.stdout.encode()).hexdigest()

    # The CA bundle is Debian's, as in the base, whatever this machine trusts.
    assert bundle_digest(image) == bundle_digest(BASE)
    name = f"airvoice-look-{uuid.uuid4().hex[:8]}"
    names.append(name)
    listing = podman(
        "run", *FLAGS, "--name", name, "--entrypoint", "sh", image, "-c",
        # The mount points may stay behind, empty; no pip settings, wheel or CA file anywhere.
        "find /etc/xdg/pip /opt/local-wheels -mindepth 1 2>/dev/null; "
        "find / -xdev \\( -name pip.conf -o -name 'torch-*.whl' -o -name ca.crt \\) 2>/dev/null; "
        "python -c 'import torch; print(torch.__version__)'",
        check=True,
    )  # fmt: skip
    lines = listing.stdout.split()
    assert lines == [lines[-1]] and lines[-1].endswith("+cpu"), listing.stdout
    inspected = json.loads(podman("image", "inspect", image, check=True).stdout)[0]
    config = inspected["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert not {k for k in env if k.startswith(("PIP_CERT", "PIP_INDEX", "PIP_FIND", "SSL_"))}
    assert not {k for k in env if k.endswith("CA_BUNDLE")}
    assert config["Entrypoint"] == ["airvoice-entrypoint"] and config["Cmd"] == ["serve"]
    assert inspected["Healthcheck"]["Test"][-1] == "/opt/airvoice/healthcheck.py"
    assert inspected["User"] in ("", "root", "0")  # the entrypoint drops root itself


def test_the_base_script_does_nothing_when_the_base_exists(image):
    started = time.perf_counter()
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "docker" / "make-base.sh"), BASE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stdout + done.stderr
    assert time.perf_counter() - started < 10
    assert shutil.which("debootstrap") or Path("/usr/sbin/debootstrap").exists()
