"""The cost guards: idle shutdown inside a RunPod pod ends the pod through the API (terminate
by default, never exit 0 when that fails); the prefetch pod terminates itself after its
marker and a grace period."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

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


def test_idle_shutdown_in_a_pod_terminates_the_pod(fake, cloud_env, cloud_engines):
    pod_id = _in_pod(fake, cloud_env)
    config = _config(idle_shutdown_minutes=0.01)
    app = create_app(config, cloud_engines)
    guard = asyncio.run(_serve_until_exit(app, config))
    assert guard.fired and guard.ended == "terminate"
    assert fake.live_pods() == [] and [p["id"] for p in fake.deleted] == [pod_id]
    assert ("podAction", f"/v2/pods/{pod_id}/action", 204) in fake.calls


def test_idle_action_stop_keeps_the_pod_stopped(fake, cloud_env, cloud_engines):
    pod_id = _in_pod(fake, cloud_env)
    cloud_env.setenv("AIRVOICE_IDLE_ACTION", "stop")
    config = _config(idle_shutdown_minutes=0.01)
    guard = asyncio.run(_serve_until_exit(create_app(config, cloud_engines), config))
    assert guard.ended == "stop"
    (pod,) = fake.live_pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"


def test_a_failed_self_stop_never_exits_0(fake, cloud_env, cloud_engines, caplog):
    pod_id = _in_pod(fake, cloud_env)
    fake.keys.discard(POD_KEY)  # RunPod refuses the pod's key: the pod cannot end itself
    config = _config(idle_shutdown_minutes=0.01)
    app = create_app(config, cloud_engines)
    with pytest.raises(SystemExit) as info:
        asyncio.run(_serve_until_exit(app, config))
    assert info.value.code == 1
    assert fake.live_pods()[0]["id"] == pod_id
    assert "still billing" in caplog.text and POD_KEY not in caplog.text


def test_the_prefetch_pod_terminates_itself_after_its_marker(fake, cloud_env, capsys):
    """The CLI is gone: after the marker and the grace period the pod ends itself."""
    from airvoice.cli import models as models_cli

    pod_id = fake.add_pod(
        name="airvoice-prefetch-1", env={"AIRVOICE_DEPLOYMENT": "airvoice"}, cpu=True
    )
    fake.keys.add(POD_KEY)
    cloud_env.setenv("RUNPOD_POD_ID", pod_id)
    cloud_env.setenv("RUNPOD_API_KEY", POD_KEY)
    cloud_env.setenv("AIRVOICE_PREFETCH_GRACE_SECONDS", "0.3")
    started = time.monotonic()
    done = threading.Thread(target=models_cli._then_idle, args=(lambda: None,), daemon=True)
    done.start()
    done.join(10)
    assert not done.is_alive(), "the prefetch pod idles forever"
    assert time.monotonic() - started >= 0.3
    assert capsys.readouterr().out.strip() == "AIRVOICE_PREFETCH_OK"
    assert fake.live_pods() == [] and [p["id"] for p in fake.deleted] == [pod_id]


def test_a_signal_does_not_stop_the_pod(fake, cloud_env, cloud_engines):
    _in_pod(fake, cloud_env)
    config = _config(idle_shutdown_minutes=5)
    app = create_app(config, cloud_engines)
    guard = asyncio.run(_serve_until_exit(app, config, signal_exit=True))
    assert not guard.fired
    assert fake.live_pods()[0]["status"] == "RUNNING"
    assert "podAction" not in fake.operations()
