"""Session tokens: every ``/ws`` connection must present one.

Browsers cannot set headers on a WebSocket, so a token is accepted three ways: an
``Authorization: Bearer`` header, a ``token`` query parameter, or a WebSocket subprotocol
``token.<TOKEN>`` offered beside ``airvoice``. Tokens are compared in constant time and never
logged.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SUBPROTOCOL = "airvoice"
TOKEN_SUBPROTOCOL_PREFIX = "token."
UNAUTHORIZED_CLOSE_CODE = 4001


def generate_token() -> str:
    """A new random session token (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Credentials:
    """The token a client presented, and the subprotocol to answer with."""

    token: str | None
    subprotocol: str | None


def credentials_from(
    headers: Mapping[str, str], query: Mapping[str, str], subprotocols: Sequence[str]
) -> Credentials:
    """Find the token in the header, the query string or the offered subprotocols."""
    token = None
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        token = value.strip()
    elif query.get("token"):
        token = query["token"]
    answer = None
    for offered in subprotocols:
        if offered.startswith(TOKEN_SUBPROTOCOL_PREFIX) and token is None:
            token = offered.removeprefix(TOKEN_SUBPROTOCOL_PREFIX)
    if SUBPROTOCOL in subprotocols:
        answer = SUBPROTOCOL
    elif any(p.startswith(TOKEN_SUBPROTOCOL_PREFIX) for p in subprotocols):
        # A browser that offered only the token protocol needs one chosen back, or it fails.
        answer = next(p for p in subprotocols if p.startswith(TOKEN_SUBPROTOCOL_PREFIX))
    return Credentials(token, answer)


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text
