"""Real airvoice servers (instant engines) on loopback behind a real dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest
import websockets
from dispatch_helpers import ask, dispatched_session, port_of, wait_until

from airvoice.client import VoiceClient
from airvoice.client.errors import AuthError, ServerBusyError
from airvoice.session_tokens import sign
from airvoice.testing.replicas import (
    SECRET,
    TOKEN,
    instant_replicas,
    running_dispatcher,
    wait_ready,
)
from airvoice.testing.wire import WireClient


def _ws(replica, token=TOKEN):
    return f"ws{replica.url.removeprefix('http')}/ws?token={token}"


async def _refusal(url):
    """The close code and reason a server answers ``url`` with, right after the handshake."""
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_sessions_spread_by_load_a_full_replica_is_skipped_and_all_full_is_explained():
    async with instant_replicas(3, max_sessions=2) as (r0, r1, r2):
        async with contextlib.AsyncExitStack() as stack:
            # r0 is full with two direct sessions on the long-lived deploy token.
            for _ in range(2):
                await stack.enter_async_context(WireClient.connect(_ws(r0)))
            async with running_dispatcher([r0.url, r1.url, r2.url]) as dispatcher:
                landed = []
                for _ in range(4):
                    _, url = await stack.enter_async_context(dispatched_session(dispatcher))
                    landed.append(port_of(url))
                    # every session is live on its replica before the next is dispatched
                ports = {port_of(r.url): r for r in (r0, r1, r2)}
                names = [ports[p].replica_id for p in landed]
                # Spread: the first two go to different replicas; none goes to the full r0.
                assert names[0] != names[1] and "r0" not in names
                assert sorted(names) == ["r1", "r1", "r2", "r2"]
                assert [r.state.slots.active for r in (r0, r1, r2)] == [2, 2, 2]

                full = await ask(dispatcher)
                assert full.status_code == 503
                assert full.headers["retry-after"] == "3"
                detail = full.json()["detail"]
                assert "every replica is full" in detail and "6 sessions on 6 slots" in detail

                with pytest.raises(ServerBusyError, match="every replica is full"):
                    async with VoiceClient(dispatcher, token=TOKEN, reconnect=False):
                        pass
                health = (await httpx.AsyncClient().get(f"{dispatcher}/health")).json()
                assert health["status"] == "unavailable" and health["free_sessions"] == 0
                assert TOKEN not in str(health) and SECRET not in str(health)


async def test_the_dispatcher_wants_the_deploy_token_and_keeps_the_secret_to_itself():
    async with instant_replicas(1) as (r0,), running_dispatcher([r0.url]) as dispatcher:
        assert (await ask(dispatcher, token=None)).status_code == 401
        assert (await ask(dispatcher, token="wrong")).status_code == 401
        with pytest.raises(AuthError, match="deploy token"):
            async with VoiceClient(dispatcher + "/connect", token="wrong", reconnect=False):
                pass
        async with httpx.AsyncClient() as http:
            body = {"replicas": [r0.url]}
            put = await http.put(f"{dispatcher}/replicas", json=body, headers=_bearer(TOKEN))
            assert put.status_code == 401  # a client's token cannot re-route sessions
            put = await http.put(f"{dispatcher}/replicas", json=body, headers=_bearer(SECRET))
            assert put.status_code == 200
        ok = await ask(dispatcher, voice="af_heart")
        assert ok.status_code == 200 and ok.json()["ws_url"].endswith("/ws?voice=af_heart")
        assert ok.headers["cache-control"] == "no-store"


async def wait_until_served(url, sessions, timeout=10.0):
    """Wait until the replica at ``url`` reports ``sessions`` live sessions."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while (await http.get(f"{url}/health")).json()["sessions"] != sessions:
            assert time.monotonic() < deadline, f"{url} never got to {sessions} sessions"
            await asyncio.sleep(0.05)


def _bearer(token):
    return {"Authorization": f"Bearer {token}"}


async def test_a_draining_replica_takes_no_new_session_and_finishes_its_live_one(speech16):
    async with instant_replicas(2, max_sessions=2) as (r0, r1):
        async with running_dispatcher([r0.url, r1.url]) as dispatcher:
            async with dispatched_session(dispatcher) as (live, url):
                drained = r0 if port_of(url) == port_of(r0.url) else r1
                other = r1 if drained is r0 else r0
                async with httpx.AsyncClient() as http:
                    denied = await http.post(f"{drained.url}/drain", headers=_bearer("nope"))
                    assert denied.status_code == 401 and not drained.state.draining
                    started = await http.post(
                        f"{drained.url}/drain?exit=true", headers=_bearer(TOKEN)
                    )
                    assert started.status_code == 202 and started.json()["sessions"] == 1
                    health = (await http.get(f"{drained.url}/health")).json()
                assert health["draining"] is True and health["free_sessions"] == 0
                assert health["sessions"] == 1

                # New sessions go elsewhere; a direct one is refused (1001, come back later).
                await asyncio.sleep(0.5)  # a poll or two
                for _ in range(2):
                    response = await ask(dispatcher)
                    assert port_of(response.json()["ws_url"]) == port_of(other.url)
                code, reason = await _refusal(_ws(drained))
                assert code == 1001 and "draining" in reason

                # The live session goes on: a whole turn, answered in full.
                mark = time.perf_counter()
                await live.stream_pcm(speech16)
                await live.stream_silence(1.0)
                await live.wait_for_rtvi("bot-stopped-speaking", timeout=20, after=mark)
                assert "Sure" in live.received.bot_text()
                assert not live.closed.is_set()
            # The client hung up: the drained replica has nothing left and stops by itself.
            await wait_until(lambda: drained.server.should_exit, 10, "the drained server to exit")
            assert not other.server.should_exit


async def test_session_tokens_expired_forged_or_for_another_replica_get_4001():
    async with instant_replicas(2) as (r0, _r1):
        base = f"ws{r0.url.removeprefix('http')}/ws?token="
        now = time.time()
        bad = {
            "expired": sign(SECRET, "r0", ttl_seconds=5, now=now - 60),
            "signature": sign("another-secret-0123456789abcdef", "r0"),
            "another replica": sign(SECRET, "r1"),
        }
        for why, token in bad.items():
            code, reason = await _refusal(base + token)
            assert code == 4001 and why in reason and token not in reason
        good = sign(SECRET, "r0")
        async with WireClient.connect(base + good):
            assert r0.state.slots.active == 1
        code, reason = await _refusal(base + good)  # one session per token
        assert code == 4001 and "already used" in reason
        async with WireClient.connect(base + TOKEN):  # the deploy token still works
            pass
    # A server without the shared secret takes no signed token at all.
    async with instant_replicas(1, dispatch_secret=None) as (lone,):
        code, _ = await _refusal(f"ws{lone.url.removeprefix('http')}/ws?token={sign(SECRET, 'r0')}")
        assert code == 4001


async def test_a_killed_replica_s_client_reconnects_through_the_dispatcher(doomed_replica):
    process, doomed_url = doomed_replica
    await asyncio.to_thread(wait_ready, process, doomed_url)
    try:
        async with instant_replicas(1, max_sessions=1) as (survivor,):
            direct = contextlib.AsyncExitStack()
            # The survivor is full, so the first dispatched session lands on the doomed one.
            await direct.enter_async_context(WireClient.connect(_ws(survivor)))
            async with running_dispatcher([doomed_url, survivor.url]) as dispatcher:
                client = VoiceClient(dispatcher, token=TOKEN, max_reconnects=8)
                reconnecting = []
                client.on("reconnecting", reconnecting.append)
                await client.connect()
                assert port_of(client.url) == port_of(doomed_url)
                # Tokens in the query string, as Pipecat's transport sends them (the log check
                # in conftest reads the replica's access log for them afterwards).
                for token in (sign(SECRET, "doomed"), TOKEN):
                    async with WireClient.connect(f"ws{doomed_url[4:]}/ws?token={token}"):
                        pass
                    await wait_until_served(doomed_url, 1)
                await direct.aclose()  # a slot frees up on the survivor
                await wait_until(lambda: survivor.state.slots.active == 0, 5, "a free slot")
                process.kill()  # the doomed replica dies without a word
                await wait_until(lambda: client.reconnects == 1, 20, "the reconnection")
                assert port_of(client.url) == port_of(survivor.url)
                assert survivor.state.slots.active == 1 and client.connected
                assert reconnecting and client._error is None
                await client.close()
    finally:
        process.kill()
