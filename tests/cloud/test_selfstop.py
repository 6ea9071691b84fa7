"""The cost guard: idle shutdown inside a RunPod pod stops the pod through the API."""

from __future__ import annotations

import asyncio
import time

from airvoice.cloud.selfstop import stop_pod_when_idle
from airvoice.config import ServerConfig
from airvoice.server.app import create_app
from airvoice.server.run import running_server

POD_KEY = "pod-scoped-key-123"


def _config(**overrides) -> ServerConfig:
    return ServerConfig(host="127.0.0.1", port=0, token="t" * 20, smart_turn=False, **overrides)


async def _serve_until_exit(app, config, signal_exit: bool = False):
    """As `airvoice serve` does: the guard wraps the server's exit once the server exists."""
    async with running_server(app, config) as server:
        with stop_pod_when_idle(app.state.airvoice) as guard:
            if signal_exit:
                server.handle_exit(15, None)
            deadline = time.monotonic() + 10
            while not server.should_exit:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
    return guard


def _in_pod(fake, cloud_env) -> str:
    pod_id = fake.add_pod(name="airvoice-serving")
    fake.keys.add(POD_KEY)
    cloud_env.setenv("RUNPOD_POD_ID", pod_id)
    cloud_env.setenv("RUNPOD_API_KEY", POD_KEY)
    return pod_id


def test_idle_shutdown_in_a_pod_stops_the_pod(fake, cloud_env, cloud_engines):
    pod_id = _in_pod(fake, cloud_env)
    config = _config(idle_shutdown_minutes=0.01)
    app = create_app(config, cloud_engines)
    guard = asyncio.run(_serve_until_exit(app, config))
    assert guard.fired
    (pod,) = fake.live_pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"
    assert ("podAction", f"/v2/pods/{pod_id}/action", 200) in fake.calls


def test_a_signal_does_not_stop_the_pod(fake, cloud_env, cloud_engines):
    _in_pod(fake, cloud_env)
    config = _config(idle_shutdown_minutes=5)
    app = create_app(config, cloud_engines)
    guard = asyncio.run(_serve_until_exit(app, config, signal_exit=True))
    assert not guard.fired
    assert fake.live_pods()[0]["status"] == "RUNNING"
    assert "podAction" not in fake.operations()
