"""Repeated and varied warnings are rate-limited per session (issue 15, item 7): one hostile
session cannot silence another's warnings, nor flood the log. A real server on loopback, its
logs set up as ``airvoice serve`` sets them up."""

from __future__ import annotations

import logging
import sys
import time

from loguru import logger

from airvoice import protocol
from airvoice.server import logs
from airvoice.server.app import create_app
from airvoice.server.run import running_server
from airvoice.testing.server import TOKEN, ws_url
from airvoice.testing.server import offline_server_config as server_config
from airvoice.testing.wire import WireClient


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _settled(client: WireClient) -> None:
    """Every message sent before has been handled (the session answers in order)."""
    mark = time.perf_counter()
    await client.send(protocol.rtvi("client-message", {"t": "reset", "d": {}}))
    await client.wait_for_rtvi("server-response", timeout=5, after=mark)


async def test_one_session_cannot_silence_or_flood_the_log(engines, capsys):
    config = server_config(log_level="info")
    root = logging.getLogger()
    level, keep = root.level, Keep()
    root.addHandler(keep)
    logs.configure_logging("info", TOKEN)  # Pipecat's loguru lines go to (captured) stderr
    try:
        async with running_server(create_app(config, engines), config) as server:
            async with (
                WireClient.connect(ws_url(server)) as hostile,
                WireClient.connect(ws_url(server)) as honest,
            ):
                for _ in range(20):  # the same warning, over and over
                    await hostile.send(protocol.rtvi("same-kind"))
                await _settled(hostile)
                await honest.send(protocol.rtvi("same-kind"))
                await _settled(honest)
                for i in range(120):  # a different warning each time
                    await hostile.send(protocol.rtvi(f"kind-{i:03d}"))
                await _settled(hostile)
                assert len(hostile.received.rtvi("error-response")) == 140  # all answered
            err = capsys.readouterr().err
    finally:
        root.removeHandler(keep)
        root.setLevel(level)
        logger.remove()
        logger.add(sys.stderr)
    # Pipecat warns once per unknown type: 5 of the hostile's 20 repeats, and the honest one.
    assert err.count("Unsupported RTVI message type: same-kind") == 6, err[-2000:]
    varied = err.count("Unsupported RTVI message type: kind-")
    assert 0 < varied <= logs.SESSION_LINES - 5, f"{varied} varied lines from one session"
    # Each session's counters are gone with it; the end of the flood says what was held back.
    assert all(limiter.sessions == 0 for limiter in logs._LIMITERS)
    ended = [line for line in keep.lines if "of its log lines were not written" in line]
    assert len(ended) == 1 and int(ended[0].split("; ")[1].split()[0]) >= 120 - varied
    assert TOKEN not in err and all(TOKEN not in line for line in keep.lines)
