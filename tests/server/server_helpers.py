"""Helpers shared by the server tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

from airvoice.config import ServerConfig

TOKEN = "test-token-0123456789"
VOICE = "jm_kumo"


def server_config(**overrides) -> ServerConfig:
    base = {
        "host": "127.0.0.1",
        "port": 0,
        "token": TOKEN,
        "voice": VOICE,
        "smart_turn": False,
        "silence_timeout_seconds": 0.6,
        "max_sessions": 2,
        "shutdown_grace_seconds": 3.0,
    }
    base.update(overrides)
    return ServerConfig(**base)


def ws_url(server, token: str | None = TOKEN, **query) -> str:
    from urllib.parse import urlencode

    from airvoice.server.run import bound_port

    params = dict(query)
    if token is not None:
        params["token"] = token
    suffix = f"?{urlencode(params)}" if params else ""
    return f"ws://127.0.0.1:{bound_port(server)}/ws{suffix}"
