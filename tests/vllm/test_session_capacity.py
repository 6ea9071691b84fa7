"""The session limit follows from the KV capacity vLLM reports: a real server process on the
real vLLM CPU build, with a KV cache small enough that it, not ``max_num_seqs``, binds."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import urllib.request

import pytest
import websockets

from airvoice import protocol
from airvoice.testing.serve import offline_server_process
from airvoice.testing.server import TOKEN
from airvoice.testing.wire import WireClient

KV_CACHE_GIB = 0.01
"""About 21,000 tokens of the tiny model's KV cache: two or three conversations of 8,192."""

VLLM_CAPACITY = re.compile(
    r"KV cache size: ([\d,]+) tokens, Maximum concurrency for ([\d,]+) tokens per request: "
    r"([\d.]+)x"
)


def _health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        return json.load(response)


async def _fill_then_one_more(port: int, sessions: int) -> tuple[list[str], int, str]:
    """``sessions`` clients each get a typed turn answered at once; then one more connects."""
    url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
    async with asyncio.timeout(120), contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(WireClient.connect(url)) for _ in range(sessions)]
        for i, client in enumerate(opened):
            turn = {"content": f"Question {i}: what is two plus two?", "options": {}}
            await client.send(protocol.rtvi("send-text", turn))
        await asyncio.gather(*(c.wait_for_rtvi("bot-llm-stopped", 60) for c in opened))
        replies = [c.received.bot_text() for c in opened]
        async with websockets.connect(url) as extra:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(extra.recv(), 10)
    return replies, closed.value.rcvd.code, closed.value.rcvd.reason


def test_the_session_limit_is_what_vllms_kv_cache_holds(tmp_path):
    log = tmp_path / "server.log"
    settings = {"engine": "vllm", "device": "cpu", "max_sessions": "auto"}
    with offline_server_process(
        tmp_path / "models", log, kv_cache_gib=KV_CACHE_GIB, **settings
    ) as (port, _pid):
        health = _health(port)
        found = VLLM_CAPACITY.search(log.read_text())
        assert found, log.read_text()[-3000:]
        tokens, max_len = (int(found.group(i).replace(",", "")) for i in (1, 2))
        concurrency = float(found.group(3))
        engine = health["engine"]
        # What vLLM logged at start-up is what the server took as its limit.
        assert engine["kv_cache_tokens"] == tokens and max_len == 8192
        assert health["max_sessions"] == engine["session_capacity"] == math.floor(concurrency)
        assert 2 <= health["max_sessions"] < 64  # the KV cache binds, not max_num_seqs
        replies, code, reason = asyncio.run(_fill_then_one_more(port, health["max_sessions"]))
    assert all(reply.strip() for reply in replies), replies
    assert code == 1008 and "full" in reason
    text = log.read_text()
    assert f"taking up to {health['max_sessions']} sessions at once" in text
    assert TOKEN not in text
