"""The per-address connection cap behind a trusted reverse proxy (RunPod's HTTP proxy puts every
client behind its own address): a real server on loopback, the test playing the proxy."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import websockets

from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.server import ws_url


async def _request(port: int, forwarded: str | None):
    """A keep-alive connection with one GET /health: (status line or b"", reader, writer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = f"X-Forwarded-For: {forwarded}\r\n".encode() if forwarded else b""
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    try:
        answer = await asyncio.wait_for(reader.read(65536), 3.0)
    except ConnectionError:
        answer = b""
    return answer.partition(b"\r\n")[0], reader, writer


async def _closed(reader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65536), 1.0) == b""
    except ConnectionError:
        return True


async def test_a_spoofed_forwarded_address_does_not_evade_the_cap(engines):
    config = server_config(max_connections_per_address=2, handshake_timeout_seconds=30)
    async with running_server(create_app(config, engines), config) as server:
        port = bound_port(server)
        held = [await _request(port, f"198.51.100.{i}") for i in range(2)]
        assert all(status.startswith(b"HTTP/1.1 200") for status, _, _ in held)
        # 127.0.0.1 is no trusted proxy: its X-Forwarded-For is not believed.
        status, reader, writer = await _request(port, "203.0.113.99")
        assert status == b"" and await _closed(reader)
        writer.close()
        with pytest.raises(websockets.InvalidMessage):  # closed before any answer
            async with websockets.connect(
                ws_url(server), additional_headers={"X-Forwarded-For": "203.0.113.98"}
            ):
                pass
        for _, _, w in held:
            w.close()


async def test_each_client_of_a_trusted_proxy_gets_its_own_cap(engines):
    config = server_config(
        max_connections_per_address=2,
        handshake_timeout_seconds=30,
        trusted_proxies=["127.0.0.1"],
    )
    app = create_app(config, engines)
    async with running_server(app, config) as server:
        port = bound_port(server)
        guard = app.state.airvoice.connections
        held = []
        for client in ("203.0.113.1", "203.0.113.1", "203.0.113.2", "203.0.113.2"):
            held.append(await _request(port, client))
        assert all(status.startswith(b"HTTP/1.1 200") for status, _, _ in held), held
        assert guard.open["203.0.113.1"] == 2 and guard.open["203.0.113.2"] == 2
        # The third of one client is refused, with a reason, whatever it wrote on the left
        # (a client may prepend anything; the proxy appends the address it saw).
        for forwarded in ("203.0.113.1", "192.0.2.50, 203.0.113.1"):
            status, reader, writer = await _request(port, forwarded)
            assert status == b"HTTP/1.1 429 Too Many Requests"
            assert await _closed(reader)
            writer.close()
        # A WebSocket through the proxy counts the same way.
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(
                ws_url(server), additional_headers={"X-Forwarded-For": "203.0.113.2"}
            ):
                pass
        assert info.value.response.status_code == 429
        # Another client of the same proxy is served.
        headers = {"X-Forwarded-For": "192.0.2.50, 203.0.113.3"}
        async with websockets.connect(ws_url(server), additional_headers=headers) as ws:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.2)
            assert guard.open["203.0.113.3"] == 1
        for _, _, w in held:
            w.close()
        await asyncio.sleep(0.2)
        assert guard.total == 0
