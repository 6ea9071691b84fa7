"""Requests that trickle in or declare huge bodies (issue 15, item 4): a real server on loopback."""

from __future__ import annotations

import asyncio
import time

from fastapi import Request
from starlette.requests import ClientDisconnect

from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.server import offline_server_config as server_config


async def _trickle(port: int, head: bytes, seconds: float) -> tuple[bytes, float | None]:
    """Send ``head``, then one body byte every 0.2 s for up to ``seconds``: what the server
    answered, and when it closed the connection (None: still open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    started = time.perf_counter()
    answer = b""
    try:
        while time.perf_counter() - started < seconds:
            try:
                writer.write(b"a")
                await writer.drain()
            except ConnectionError:
                return answer, time.perf_counter() - started
            try:
                chunk = await asyncio.wait_for(reader.read(65536), 0.2)
            except TimeoutError:
                continue
            if not chunk:
                return answer, time.perf_counter() - started
            answer += chunk
        return answer, None
    finally:
        writer.close()


async def test_a_trickling_body_is_answered_408_and_closed(engines):
    config = server_config(request_body_timeout_seconds=1.0, handshake_timeout_seconds=1.0)
    app = create_app(config, engines)
    handlers: list[str] = []

    @app.post("/read-body")
    async def read_body(request: Request) -> dict[str, int]:  # a handler that reads the body
        try:
            body = await request.body()
        except ClientDisconnect:
            handlers.append("disconnected")
            raise
        handlers.append("read")
        return {"bytes": len(body)}

    async with running_server(app, config) as server:
        port = bound_port(server)
        head = b"POST /read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        answer, closed = await _trickle(port, head, 4.0)
        assert closed is not None and closed < 2.5, "a trickling body held the connection"
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:120]
        assert b"did not arrive within 1 s" in answer
        await asyncio.sleep(0.2)
        assert handlers == ["disconnected"]  # the handler's task ended too

        # A route that answers without reading the body (401 here): closed all the same.
        head = b"POST /drain HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        answer, closed = await _trickle(port, head, 4.0)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:120]
        assert closed is not None and closed < 2.5, "a trickling body held the connection"

        # A huge declared body is refused before the app sees it, without reading it.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(65536), 2.0)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:120]
        assert await asyncio.wait_for(reader.read(65536), 2.0) == b""  # then closed
        writer.close()
        assert handlers == ["disconnected"]

        # A whole body sent at once is served as before, on a connection kept alive.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            writer.write(b"POST /read-body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            answer = await asyncio.wait_for(reader.read(65536), 2.0)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"bytes":5}')
        writer.close()
        assert handlers == ["disconnected", "read", "read"]
