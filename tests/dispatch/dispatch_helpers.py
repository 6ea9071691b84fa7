"""Shared steps of the dispatcher tests: ask the dispatcher, then open the session it names."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from airvoice.testing.replicas import TOKEN
from airvoice.testing.wire import WireClient


async def ask(dispatcher: str, token: str | None = TOKEN, **data: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{dispatcher}/connect", json=data or None, headers=headers)


@contextlib.asynccontextmanager
async def dispatched_session(dispatcher: str) -> AsyncIterator[tuple[WireClient, str]]:
    """A session opened the way Pipecat's client does: POST /connect, then ws_url?token=."""
    response = await ask(dispatcher)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"ws_url", "token"}  # the only keys Pipecat's transport accepts
    url = f"{body['ws_url']}?token={body['token']}"
    async with WireClient.connect(url) as client:
        yield client, body["ws_url"]


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def port_of(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
