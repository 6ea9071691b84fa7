"""The web client: ``/`` serves the page, ``/static/<file>`` its assets, under a strict CSP.

Every asset ships inside the package (``airvoice/server/static``) and is read once at start-up;
the page loads nothing from anywhere else, and its Content-Security-Policy lets it reach only
this server (its own files and the ``/ws`` WebSocket on the same host).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, Request, Response

STATIC_DIR = Path(__file__).with_name("static")
INDEX = "index.html"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# A Host header we are willing to echo into the policy: a name or IP address, maybe a port.
_HOST = re.compile(r"(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def content_security_policy(host: str | None) -> str:
    """The page's policy: its own scripts, styles and images only; WebSocket to this host."""
    connect = "'self'"
    if host and _HOST.fullmatch(host):
        # CSP 3 lets 'self' match ws(s) on the same host; older browsers need it spelled out.
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "media-src 'self'",
            "worker-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(host: str | None) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(host),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


def load_assets(directory: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """File name -> (content, media type) for every servable file in ``directory``."""
    assets = {}
    for path in sorted(directory.iterdir()):
        media_type = MEDIA_TYPES.get(path.suffix)
        if path.is_file() and media_type is not None:
            assets[path.name] = (path.read_bytes(), media_type)
    if INDEX not in assets:
        raise FileNotFoundError(f"the web client is missing: no {INDEX} in {directory}")
    return assets


def add_web_client(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static/<name>`` (no sub-folders)."""
    assets = load_assets()

    def respond(name: str, request: Request) -> Response:
        found = assets.get(name)
        if found is None:
            return Response("not found", status_code=404, media_type="text/plain")
        content, media_type = found
        headers = security_headers(request.headers.get("host"))
        return Response(content, media_type=media_type, headers=headers)

    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        return respond(INDEX, request)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request) -> Response:
        return respond(name, request)
