"""``deploy --trusted-proxies`` reaches the pod's server as the setting it reads."""

from __future__ import annotations

import dataclasses

import pytest
from cloud_helpers import SETTINGS

from airvoice.cloud.specs import server_env
from airvoice.config import ServerConfig


def _server_config(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServerConfig:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return ServerConfig()


def test_no_proxy_is_trusted_unless_asked(monkeypatch):
    monkeypatch.delenv("AIRVOICE_TRUSTED_PROXIES", raising=False)
    env = server_env(SETTINGS)
    assert "AIRVOICE_TRUSTED_PROXIES" not in env
    assert _server_config(env, monkeypatch).trusted_proxies == []


def test_trusted_proxies_go_to_the_pod(monkeypatch):
    settings = dataclasses.replace(SETTINGS, trusted_proxies=("10.0.0.0/8", "192.0.2.7"))
    config = _server_config(server_env(settings), monkeypatch)
    assert config.trusted_proxies == ["10.0.0.0/8", "192.0.2.7/32"]
