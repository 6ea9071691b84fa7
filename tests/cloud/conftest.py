"""The cloud tests: a fake RunPod on 127.0.0.1 that validates every request and response
against RunPod's OpenAPI document, and a real airvoice server standing in for the proxy."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from cloud_helpers import API_KEY, HF_TOKEN, SERVER_TOKEN, VOICE, image_cuda

from airvoice.testing.fakerunpod import FakeRunPod, FakeTiming, Faults
from airvoice.testing.network import block_network


@pytest.fixture(autouse=True)
def loopback_only():
    """Nothing in these tests may leave the machine."""
    with block_network() as refused:
        yield
    assert not refused, f"non-loopback traffic attempted: {refused}"


@pytest.fixture
def cloud_env(monkeypatch, tmp_path):
    """A clean environment: no ~/.runpod config, no stray keys."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in (
        "RUNPOD_API_KEY",
        "RUNPOD_POD_ID",
        "HF_TOKEN",
        "AIRVOICE_RUNPOD_API_URL",
        "AIRVOICE_RUNPOD_PROXY_TEMPLATE",
        "AIRVOICE_IDLE_ACTION",
        "AIRVOICE_PREFETCH_GRACE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def faults() -> Faults:
    return Faults()


@pytest.fixture
def fake(cloud_env, faults):
    """A started fake RunPod; the test fails if anything broke RunPod's contract. Its GPU hosts
    refuse to start the image on a driver older than the image's CUDA, as RunPod's do."""
    timing = FakeTiming(provision_seconds=0.1, image_pull_seconds=0.2, log_step_seconds=0.05)
    with FakeRunPod(API_KEY, timing=timing, faults=faults, image_cuda=image_cuda()) as server:
        cloud_env.setenv("AIRVOICE_RUNPOD_API_URL", server.base_url)
        cloud_env.setenv("RUNPOD_API_KEY", API_KEY)
        cloud_env.setenv("HF_TOKEN", HF_TOKEN)
        yield server
    assert server.violations == [], "\n".join(server.violations)


@pytest.fixture(scope="session")
def cloud_engines(engines):
    """The offline engines (tiny Ultravox, real int8 Kokoro) shared by the whole suite."""
    return engines


@pytest.fixture(scope="session")
def voice_server(cloud_engines):
    """A real airvoice server on 127.0.0.1 (in its own thread and loop); yields its port."""
    from airvoice.config import ServerConfig
    from airvoice.server.app import create_app
    from airvoice.server.run import bound_port, running_server

    holder: dict[str, object] = {}
    ready = threading.Event()
    stop = threading.Event()

    async def main() -> None:
        config = ServerConfig(
            host="127.0.0.1",
            port=0,
            token=SERVER_TOKEN,
            voice=VOICE,
            smart_turn=False,
            silence_timeout_seconds=0.6,
            max_sessions=2,
            shutdown_grace_seconds=2.0,
        )
        try:
            async with running_server(create_app(config, cloud_engines), config) as server:
                holder["port"] = bound_port(server)
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.05)
        except BaseException as exc:
            holder["error"] = exc
            ready.set()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(60), "the airvoice server did not start"
    if "error" in holder:
        raise holder["error"]  # type: ignore[misc]
    yield int(holder["port"])  # type: ignore[arg-type]
    stop.set()
    thread.join(15)


@pytest.fixture
def proxy_to_server(cloud_env, voice_server):
    """Point the proxy template at the local server: ``http://127.0.0.1:PORT``."""
    cloud_env.setenv("AIRVOICE_RUNPOD_PROXY_TEMPLATE", f"http://127.0.0.1:{voice_server}")
    return voice_server


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
