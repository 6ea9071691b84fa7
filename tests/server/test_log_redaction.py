"""The session token never reaches the logs, even when a client puts it in the URL."""

from __future__ import annotations

import contextlib
import logging

from airvoice.config import ServerConfig
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.wire import WireClient

TOKEN = "redaction-test-token-0123456789"


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_a_token_in_the_websocket_url_is_not_logged():
    config = ServerConfig(host="127.0.0.1", port=0, token=TOKEN, log_level="info")
    app = create_app(config)  # no engines: the session is refused after the handshake
    keep = Keep()
    uvicorn_logger = logging.getLogger("uvicorn")  # uvicorn's loggers do not reach the root
    async with running_server(app, config) as server:
        uvicorn_logger.addHandler(keep)
        try:
            url = f"ws://127.0.0.1:{bound_port(server)}/ws?token={TOKEN}&x=1"
            with contextlib.suppress(Exception):
                async with WireClient.connect(url):
                    pass
        finally:
            uvicorn_logger.removeHandler(keep)
    logged = "\n".join(keep.lines)
    assert "/ws?token=***&x=1" in logged  # the line is there, the value is not
    assert TOKEN not in logged
