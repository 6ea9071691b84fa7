"""``deploy --replicas`` and ``scale`` against the fake RunPod, each pod's port answered by a
real server (instant engines) and the dispatcher pod by a real dispatcher."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
from cloud_helpers import SERVER_TOKEN, deploy_json, run_cli
from replica_rig import dispatcher_config, replica_rig

from airvoice.testing.wire import WireClient


def _replicas(fake):
    return [p for p in fake.live_pods() if p["env"].get("AIRVOICE_ROLE") == "replica"]


def _dispatchers(fake):
    return [p for p in fake.live_pods() if p["env"].get("AIRVOICE_ROLE") == "dispatcher"]


def test_deploy_three_replicas_on_one_volume_behind_a_dispatcher(fake, cloud_env):
    with replica_rig(fake, 3) as rig:
        cloud_env.setenv("AIRVOICE_RUNPOD_PROXY_TEMPLATE", rig.template)
        code, result, err = deploy_json(
            "--replicas", "3", "--gpu-count", "2", "--token", SERVER_TOKEN, "--timeout", "1"
        )
        assert code == 0, err
        replicas, (dispatcher,) = _replicas(fake), _dispatchers(fake)
        assert len(replicas) == 3 and sorted(result["replica_pod_ids"]) == sorted(
            p["id"] for p in replicas
        )
        (volume,) = fake.volumes.values()  # one volume, mounted by every replica
        assert {json.dumps(p["mounts"]) for p in replicas} == {
            json.dumps({"network": [{"volumeId": volume["id"], "path": "/workspace"}]})
        }
        assert {p["dataCenterId"] for p in replicas} == {volume["dataCenter"]}
        assert {p["gpu"]["count"] for p in replicas} == {2}
        secrets = {p["env"]["AIRVOICE_DISPATCH_SECRET"] for p in replicas}
        assert len(secrets) == 1 and len(secrets.pop()) >= 32
        assert {p["env"]["AIRVOICE_TENSOR_PARALLEL_SIZE"] for p in replicas} == {"2"}
        assert {p["env"]["AIRVOICE_DEPLOYMENT"] for p in fake.live_pods()} == {"airvoice"}
        # The dispatcher pod: small CPU, same data center, the replicas' proxy URLs.
        assert "cpu" in dispatcher and dispatcher["dataCenterId"] == volume["dataCenter"]
        urls = dispatcher["env"]["AIRVOICE_DISPATCH_REPLICAS"].split(",")
        assert sorted(urls) == sorted(rig.template.format(pod=p["id"], port=8000) for p in replicas)
        assert (
            dispatcher["env"]["AIRVOICE_DISPATCH_SECRET"]
            == replicas[0]["env"]["AIRVOICE_DISPATCH_SECRET"]
        )
        # It ends itself (the replicas' idle action) 15 min after its last replica has gone.
        config = dispatcher_config(dispatcher["args"], dispatcher["env"])
        assert (config.idle_timeout_minutes, config.idle_action) == (15, "terminate")
        endpoint = rig.template.format(pod=dispatcher["id"], port=8080) + "/connect"
        assert result["endpoint"] == endpoint and result["dispatcher_pod_id"] == dispatcher["id"]
        assert result["talk_command"].startswith(f"airvoice talk {endpoint}")
        # The endpoint works as a dispatcher: a session goes to one of the replicas.
        answer = httpx.post(endpoint, headers={"Authorization": f"Bearer {SERVER_TOKEN}"})
        assert answer.status_code == 200, answer.text
        ws_url = answer.json()["ws_url"]
        assert any(ws_url.startswith("ws" + u.removeprefix("http")) for u in urls)
        secret = replicas[0]["env"]["AIRVOICE_DISPATCH_SECRET"]
        assert secret not in err and secret not in json.dumps(result)  # the pods' env only

        # Teardown finds them all by the deployment's name.
        down = run_cli("pods", "down", "--name", "airvoice", "--yes")
        assert down.exit_code == 0, down.stderr
        assert fake.live_pods() == []


def test_a_dispatcher_that_cannot_be_placed_leaves_nothing_behind(fake, faults, cloud_env):
    with replica_rig(fake, 2) as rig:
        cloud_env.setenv("AIRVOICE_RUNPOD_PROXY_TEMPLATE", rig.template)
        faults.no_cpu_capacity_in = {"EU-RO-1", "US-KS-2", "CA-MTL-1"}
        code, _, err = deploy_json("--replicas", "2", "--timeout", "1", "--data-center", "EU-RO-1")
        assert code == 1
        assert "no CPU pod could be placed" in err and "airvoice dispatch" in err
        assert fake.live_pods() == [] and fake.volumes == {}


def test_scale_adds_a_copy_and_removes_by_draining_first(fake, cloud_env):
    with replica_rig(fake, 4) as rig:
        cloud_env.setenv("AIRVOICE_RUNPOD_PROXY_TEMPLATE", rig.template)
        code, result, err = deploy_json("--replicas", "2", "--token", SERVER_TOKEN)
        assert code == 0, err
        first = set(result["replica_pod_ids"])

        up = run_cli("scale", "airvoice", "3", "--json", "--poll-interval", "0.05")
        assert up.exit_code == 0, up.stderr
        grown = json.loads(up.stdout)
        (added,) = grown["added"]
        assert set(grown["replicas"]) == first | {added}
        new, old = next(p for p in _replicas(fake) if p["id"] == added), _replicas(fake)[0]
        for key in ("image", "mounts", "dataCenterId", "gpu", "env"):
            assert new[key] == old[key], key  # a true copy: same volume, secret, token
        dispatcher = _dispatchers(fake)[0]
        pool = rig.backends[f"{dispatcher['id']}-8080"].app.state.pool
        assert len(pool.replicas) == 3  # the dispatcher was told

        # Sessions: 1 on the replica that will go (the least busy), 2 on each other one.
        order = sorted(grown["replicas"])
        victim, others = order[0], order[1:]

        async def hold_sessions(closed, opened):
            async with contextlib_stack() as stack:
                for pod, count in [(victim, 1)] + [(p, 2) for p in others]:
                    url = rig.backends[f"{pod}-8000"].url.replace("http", "ws")
                    for _ in range(count):
                        await stack.enter_async_context(
                            WireClient.connect(f"{url}/ws?token={SERVER_TOKEN}")
                        )
                opened.set()
                await asyncio.to_thread(closed.wait, 30)
                closed_at.append(time.monotonic())

        closed, opened, closed_at = threading.Event(), threading.Event(), []
        holder = threading.Thread(target=lambda: asyncio.run(hold_sessions(closed, opened)))
        holder.start()
        assert opened.wait(30)
        outcome = {}
        scaler = threading.Thread(
            target=lambda: outcome.update(
                r=run_cli("scale", "airvoice", "2", "--json", "--poll-interval", "0.05")
            )
        )
        scaler.start()
        deadline = time.monotonic() + 20
        while not rig.replica_state(victim).draining:
            assert time.monotonic() < deadline, "the victim was never drained"
            time.sleep(0.05)
        time.sleep(0.5)
        assert victim in {p["id"] for p in fake.live_pods()}  # its session is still live
        assert len(pool.replicas) == 2  # and the dispatcher no longer sends it new ones
        closed.set()
        holder.join(30)
        scaler.join(30)
        result = outcome["r"]
        assert result.exit_code == 0, result.stderr
        shrunk = json.loads(result.stdout)
        assert shrunk["removed"] == [victim] and shrunk["cut_sessions"] == 0
        drained_at = next(
            t for t, pod, what in rig.events if pod == victim and what == "POST /drain"
        )
        assert drained_at < closed_at[0] < fake.deleted_at[victim]
        assert {p["id"] for p in _replicas(fake)} == set(others)


def contextlib_stack():
    import contextlib

    return contextlib.AsyncExitStack()
