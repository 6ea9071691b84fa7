"""Session tokens: every ``/ws`` connection must present one.

Two kinds are accepted: the server's long-lived deploy token, and (when the server shares a
dispatch secret with a dispatcher) the short-lived signed tokens of
:mod:`airvoice.session_tokens`.

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

from airvoice.session_tokens import SessionTokenChecker, TokenError, looks_like_session_token

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


def refusal(
    given: str | None, deploy_token: str, sessions: SessionTokenChecker | None
) -> str | None:
    """Why a presented token may not open a session, or None if it may.

    The long-lived deploy token always works (direct connections); a signed session token from
    the dispatcher works once, before it expires, on the replica it names (checked here, with
    the shared secret, without asking the dispatcher). The reason never contains the token."""
    if given is None:
        return "missing token: pass ?token=, a Bearer header or subprotocol token.<T>"
    if token_matches(given, deploy_token):
        return None
    if sessions is not None and looks_like_session_token(given):
        try:
            sessions.accept(given)
        except TokenError as exc:
            return str(exc)
        return None
    return "wrong token: pass ?token=, a Bearer header or subprotocol token.<T>"


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    return text.replace(secret, "***") if secret else text
