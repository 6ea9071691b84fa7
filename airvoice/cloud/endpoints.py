"""The public URLs of a pod's port, through RunPod's HTTPS proxy."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_PROXY_TEMPLATE = "https://{pod}-{port}.proxy.runpod.net"
PROXY_TEMPLATE_ENV = "AIRVOICE_RUNPOD_PROXY_TEMPLATE"
"""Overrides the template (tests point it at a local airvoice server)."""


@dataclass(frozen=True)
class ProxyUrls:
    """``https://{pod}-{port}.proxy.runpod.net``, or another template with those fields."""

    template: str = DEFAULT_PROXY_TEMPLATE

    @classmethod
    def from_env(cls, template: str | None = None) -> ProxyUrls:
        """The template given, else ``AIRVOICE_RUNPOD_PROXY_TEMPLATE``, else RunPod's."""
        chosen = template or os.environ.get(PROXY_TEMPLATE_ENV, "").strip()
        return cls(chosen or DEFAULT_PROXY_TEMPLATE)

    def base(self, pod_id: str, port: int) -> str:
        """The HTTP(S) base URL of ``port`` on ``pod_id``."""
        return self.template.format(pod=pod_id, port=port).rstrip("/")

    def health(self, pod_id: str, port: int) -> str:
        """The server's ``/health``."""
        return f"{self.base(pod_id, port)}/health"

    def websocket(self, pod_id: str, port: int) -> str:
        """The server's ``/ws`` as ``wss://`` (``ws://`` for a plain-HTTP template)."""
        base = self.base(pod_id, port)
        if base.startswith("https://"):
            base = "wss://" + base.removeprefix("https://")
        elif base.startswith("http://"):
            base = "ws://" + base.removeprefix("http://")
        return f"{base}/ws"
