"""Settings of ``airvoice dispatch``; each is also read from ``AIRVOICE_DISPATCH_<NAME>``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatchConfig(BaseSettings):
    """Where the dispatcher listens, which replicas it sends sessions to, and its secrets."""

    model_config = SettingsConfigDict(env_prefix="AIRVOICE_DISPATCH_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    replicas: list[str] = Field(default_factory=list)
    """Base URLs of the replicas (``https://host:port``)."""
    token: SecretStr
    """The deploy token: what a client presents to ``POST /connect``."""
    secret: SecretStr
    """Signing secret shared with the replicas (their ``AIRVOICE_DISPATCH_SECRET``)."""
    token_ttl_seconds: float = Field(30.0, gt=0, le=600)
    poll_interval_seconds: float = Field(1.0, gt=0)
    poll_timeout_seconds: float = Field(2.0, gt=0)
    settle_seconds: float = Field(1.0, ge=0)
    kv_cache_full: float = Field(0.95, gt=0, le=1)
    retry_after_seconds: int = Field(5, ge=1)
    allow_origins: list[str] = Field(default_factory=list)
    """Web pages (origins) allowed to call ``/connect`` from a browser (CORS)."""
    idle_timeout_minutes: float = Field(0.0, ge=0)
    """Inside a RunPod pod: end the pod once no replica has answered for this long (0: never)."""
    idle_action: Literal["terminate", "stop"] = "terminate"
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    log_level: str = "info"
