"""Where the RunPod API key comes from, and a wrapper that never shows it."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from airvoice.cloud.errors import MissingApiKeyError

ENV_VAR = "RUNPOD_API_KEY"


def config_path() -> Path:
    """RunPod's own tools write ``~/.runpod/config.toml``."""
    return Path.home() / ".runpod" / "config.toml"


@dataclass(frozen=True)
class ApiKey:
    """A RunPod API key: ``str()``/``repr()`` show a mask, ``reveal()`` gives the secret."""

    _value: str
    source: str

    def reveal(self) -> str:
        """The secret, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r}, value='***')"

    __str__ = __repr__


def _from_config(path: Path) -> str | None:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    profile = data.get("default")
    for table in (profile if isinstance(profile, dict) else {}, data):
        for name in ("api_key", "apikey", "apiKey"):
            value = table.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def resolve_api_key(explicit: str | None = None, path: Path | None = None) -> ApiKey:
    """The key from ``--api-key``, else ``RUNPOD_API_KEY``, else ``[default]`` of the config."""
    if explicit and explicit.strip():
        return ApiKey(explicit.strip(), "--api-key")
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return ApiKey(env, ENV_VAR)
    found = _from_config(path or config_path())
    if found:
        return ApiKey(found, str(path or config_path()))
    raise MissingApiKeyError("No RunPod API key found.")
