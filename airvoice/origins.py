"""Web page origins (``scheme://host[:port]``) allowed to use a server or a dispatcher."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(value: str) -> str:
    """A web page's origin as browsers send it in ``Origin``: ``scheme://host[:port]``.

    Lower case, no default port, no trailing slash (the server and the dispatcher compare the
    header with the list as text). Raises ``ValueError`` saying what a valid origin looks like.
    """
    text = value.strip()
    hint = (
        f"{value!r} is not a web page origin: give scheme://host[:port] as the browser's "
        "address bar shows it, without a path, e.g. https://app.example.com or "
        "http://localhost:5173"
    )
    if text == "*":
        raise ValueError(
            "'*' (any web page) is not accepted here: list each page's origin, e.g. "
            "https://app.example.com (repeat the option for several)"
        )
    if not text or any(c in text for c in "?#@*\\ ") or "://" not in text:
        raise ValueError(hint)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise ValueError(hint) from None
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or parts.path not in ("", "/") or not host:
        raise ValueError(hint)
    if parts.netloc.startswith("["):
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    elif not _HOST_NAME.match(host):
        raise ValueError(
            hint + " (a host name in ASCII: write an international name in its xn-- form)"
        )
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"
