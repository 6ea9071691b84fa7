"""Short-lived session tokens that a dispatcher signs and a replica checks on its own.

A token is ``av1.<payload>.<signature>``: the payload is URL-safe base64 of a small JSON object
(``r`` the replica id it is bound to, ``exp`` its expiry in Unix seconds, ``n`` a random nonce),
the signature URL-safe base64 of HMAC-SHA256 over ``av1.<payload>`` with a secret that only the
dispatcher and the replicas hold. A replica accepts a token that verifies, is not expired, names
this replica, and has not opened a session before (each token opens one session). Clients never
see the secret; tokens are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

PREFIX = "av1"
DEFAULT_TTL_SECONDS = 60.0
MIN_SECRET_CHARS = 16


class TokenError(ValueError):
    """A session token that must be refused (the message says why, without the token)."""


def generate_secret() -> str:
    """A new random signing secret (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def check_secret(secret: str) -> str:
    """``secret`` if it is long enough to sign with; raises ``ValueError`` otherwise."""
    if len(secret) < MIN_SECRET_CHARS:
        raise ValueError(
            f"the dispatch secret is too short ({len(secret)} characters); use at least "
            f"{MIN_SECRET_CHARS}, e.g. one from `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`"
        )
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, signed: str) -> str:
    return _b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


def sign(
    secret: str, replica: str, ttl_seconds: float = DEFAULT_TTL_SECONDS, now: float | None = None
) -> str:
    """A token for one session on ``replica``, valid for ``ttl_seconds``."""
    issued = time.time() if now is None else now
    claims = {"r": replica, "exp": round(issued + ttl_seconds, 3), "n": secrets.token_urlsafe(12)}
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signed = f"{PREFIX}.{payload}"
    return f"{signed}.{_signature(secret, signed)}"


def looks_like_session_token(token: str) -> bool:
    """Whether ``token`` has the shape of a signed session token (not a deploy token)."""
    return token.startswith(PREFIX + ".") and token.count(".") == 2


@dataclass(frozen=True)
class Claims:
    replica: str
    expires: float
    nonce: str


def verify(secret: str, token: str, replica: str, now: float | None = None) -> Claims:
    """The token's claims if it is genuine, unexpired and bound to ``replica``."""
    if not looks_like_session_token(token):
        raise TokenError("not a session token")
    prefix, payload, signature = token.split(".")
    expected = _signature(secret, f"{prefix}.{payload}")
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise TokenError("session token signature does not verify")
    try:
        claims = json.loads(_unb64(payload))
        found = Claims(str(claims["r"]), float(claims["exp"]), str(claims["n"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenError("session token payload is malformed") from exc
    if (time.time() if now is None else now) >= found.expires:
        raise TokenError("session token expired: ask the dispatcher for a new one")
    if not hmac.compare_digest(found.replica.encode(), replica.encode()):
        raise TokenError("session token is for another replica: ask the dispatcher again")
    return found


class SessionTokenChecker:
    """A replica's check of session tokens: verify, and let each token open one session."""

    def __init__(self, secret: str, replica: str, clock: Callable[[], float] = time.time) -> None:
        self.secret = check_secret(secret)
        self.replica = replica
        self._clock = clock
        self._used: dict[str, float] = {}  # nonce -> expiry, forgotten once expired

    def accept(self, token: str) -> Claims:
        """The claims of a token that may open a session now; raises ``TokenError``."""
        now = self._clock()
        self._used = {n: exp for n, exp in self._used.items() if exp > now}
        claims = verify(self.secret, token, self.replica, now)
        if claims.nonce in self._used:
            raise TokenError("session token already used: ask the dispatcher for a new one")
        self._used[claims.nonce] = claims.expires
        return claims
