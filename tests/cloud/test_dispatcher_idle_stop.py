"""The dispatcher pod ends itself once its replicas are gone, never while one answers.

A real dispatcher (the app ``airvoice dispatch`` runs, its settings parsed from the args and
env that ``deploy`` gives the dispatcher pod) in front of a real replica (instant engines), on
loopback; the pod it runs in is a pod of the fake RunPod, which answers ``POST
/pods/{id}/action`` as RunPod's REST v2 documents (terminate: 204; stop: the pod EXITED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
from replica_rig import dispatcher_config

from airvoice.cloud.specs import dispatcher_pod_request
from airvoice.dispatch.app import create_dispatch_app
from airvoice.testing.replicas import SECRET, TOKEN, free_port, instant_replicas, serve_app
from airvoice.testing.wire import WireClient

POD_KEY = "pod-scoped-dispatcher-key-4567"
IDLE_MINUTES = 0.01  # 0.6 s
IDLE_SECONDS = IDLE_MINUTES * 60


def _dispatcher_in_a_pod(fake, cloud_env, replica_url: str, idle_action: str = "terminate"):
    """The dispatcher pod as deploy creates it; this process plays the pod (RunPod's env)."""
    body = dispatcher_pod_request(
        name="airvoice-dispatch-test",
        image="ghcr.io/airvoice/airvoice:test",
        data_center="EU-RO-1",
        cpu_id="cpu3c",
        replica_urls=[replica_url],
        token=TOKEN,
        secret=SECRET,
        deployment="airvoice",
        idle_action=idle_action,
    )
    pod_id = fake.add_pod(name=body["name"], env=body["env"], cpu=True)
    fake.keys.add(POD_KEY)
    cloud_env.setenv("RUNPOD_POD_ID", pod_id)
    cloud_env.setenv("RUNPOD_API_KEY", POD_KEY)
    return pod_id, _app(body)


def _app(body):
    config = dispatcher_config(
        body["args"], body["env"], idle_timeout=IDLE_MINUTES, poll_interval=0.1
    )
    return create_dispatch_app(config)


async def _wait_for(predicate, timeout: float = 10.0) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)
    return time.monotonic()


def test_the_dispatcher_pod_terminates_itself_once_its_replicas_are_gone(fake, cloud_env, caplog):
    caplog.set_level(logging.INFO)

    async def scenario() -> tuple[str, float]:
        async with contextlib.AsyncExitStack() as replica_stack:
            (replica,) = await replica_stack.enter_async_context(instant_replicas(1))
            pod_id, app = _dispatcher_in_a_pod(fake, cloud_env, replica.url)
            async with serve_app(app) as dispatcher:
                async with httpx.AsyncClient() as http:
                    answer = await http.post(
                        f"{dispatcher}/connect", headers={"Authorization": f"Bearer {TOKEN}"}
                    )
                assert answer.status_code == 200, answer.text
                session = answer.json()
                url = f"{session['ws_url']}?token={session['token']}"
                async with WireClient.connect(url):
                    # Three idle timeouts with a replica serving a session: the pod stays.
                    await asyncio.sleep(3 * IDLE_SECONDS)
                    assert replica.state.slots.active == 1
                    assert "podAction" not in fake.operations()
                    assert pod_id in fake.pods
                # The session ended, the replica still answers (idle, not gone): the pod stays.
                await asyncio.sleep(2 * IDLE_SECONDS)
                assert "podAction" not in fake.operations()
                began = time.monotonic()
                await replica_stack.aclose()  # the replica ends itself (idle shutdown)
                gone_at = time.monotonic()
                print(f"replica closed in {gone_at - began:.2f} s")
                await _wait_for(lambda: app.state.idle_stop.ended is not None)
                assert app.state.idle_stop.ended == "terminate"
                return pod_id, fake.deleted_at[pod_id] - gone_at

    pod_id, after = asyncio.run(scenario())
    assert after >= IDLE_SECONDS * 0.9, f"ended {after:.2f} s after its replica went"
    assert after < IDLE_SECONDS + 5
    assert ("podAction", f"/v2/pods/{pod_id}/action", 204) in fake.calls
    assert fake.live_pods() == []
    assert POD_KEY not in caplog.text and SECRET not in caplog.text and TOKEN not in caplog.text
    assert "no replica has answered" in caplog.text


def test_idle_action_stop_stops_the_dispatcher_pod(fake, cloud_env):
    async def scenario() -> str:
        # The replica's address answers nothing (its pod has gone).
        pod_id, app = _dispatcher_in_a_pod(
            fake, cloud_env, f"http://127.0.0.1:{free_port()}", idle_action="stop"
        )
        async with serve_app(app):
            await _wait_for(lambda: app.state.idle_stop.ended is not None)
        return pod_id

    pod_id = asyncio.run(scenario())
    (pod,) = fake.live_pods()
    assert pod["id"] == pod_id and pod["status"] == "EXITED"


def test_outside_a_pod_nothing_happens(fake, cloud_env):
    body = dispatcher_pod_request(
        name="airvoice-dispatch-test",
        image="ghcr.io/airvoice/airvoice:test",
        data_center="EU-RO-1",
        cpu_id="cpu3c",
        replica_urls=[f"http://127.0.0.1:{free_port()}"],
        token=TOKEN,
        secret=SECRET,
        deployment="airvoice",
    )
    fake.add_pod(name=body["name"], env=body["env"], cpu=True)
    app = _app(body)  # no RUNPOD_POD_ID: not in a pod
    assert app.state.idle_stop is None

    async def scenario() -> int:
        async with serve_app(app) as dispatcher:
            await asyncio.sleep(3 * IDLE_SECONDS)
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{dispatcher}/health")).status_code

    assert asyncio.run(scenario()) == 503  # still serving, saying no replica answers
    assert "podAction" not in fake.operations() and len(fake.live_pods()) == 1


def test_a_refused_self_stop_is_retried_and_never_shows_the_key(fake, cloud_env, caplog):
    caplog.set_level(logging.INFO)

    async def scenario() -> str:
        pod_id, app = _dispatcher_in_a_pod(fake, cloud_env, f"http://127.0.0.1:{free_port()}")
        fake.keys.discard(POD_KEY)  # RunPod refuses the pod's key for now
        async with serve_app(app):
            await _wait_for(lambda: "still billing" in caplog.text)
            assert pod_id in fake.pods and app.state.idle_stop.ended is None
            fake.keys.add(POD_KEY)
            await _wait_for(lambda: app.state.idle_stop.ended == "terminate")
        return pod_id

    pod_id = asyncio.run(scenario())
    assert fake.live_pods() == [] and [p["id"] for p in fake.deleted] == [pod_id]
    assert f"airvoice pods rm {pod_id}" in caplog.text
    assert POD_KEY not in caplog.text
