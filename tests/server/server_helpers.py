"""Names the server tests use, from ``airvoice.testing.server``."""

from airvoice.testing.server import TOKEN, VOICE, ws_url
from airvoice.testing.server import offline_server_config as server_config

__all__ = ["TOKEN", "VOICE", "server_config", "ws_url"]
