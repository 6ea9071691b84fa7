"""Signed session tokens, alone: what verifies and what does not."""

from __future__ import annotations

import pytest

from airvoice.session_tokens import (
    SessionTokenChecker,
    TokenError,
    check_secret,
    sign,
    verify,
)

SECRET = "s" * 32


def test_a_fresh_token_verifies_for_its_replica():
    token = sign(SECRET, "r0", ttl_seconds=30, now=1000.0)
    claims = verify(SECRET, token, "r0", now=1010.0)
    assert (claims.replica, claims.expires) == ("r0", 1030.0)


@pytest.mark.parametrize(
    ("token_for", "secret", "now", "why"),
    [
        ("r0", SECRET, 1031.0, "expired"),
        ("r0", "x" * 32, 1001.0, "signature"),
        ("r1", SECRET, 1001.0, "another replica"),
    ],
)
def test_bad_tokens_are_refused(token_for, secret, now, why):
    token = sign(secret, token_for, ttl_seconds=30, now=1000.0)
    with pytest.raises(TokenError, match=why) as refused:
        verify(SECRET, token, "r0", now=now)
    assert token not in str(refused.value)


def test_a_tampered_payload_is_refused():
    prefix, _, signature = sign(SECRET, "r1", now=1000.0).split(".")
    # Swap in the payload of a token for r0, keeping r1's signature.
    other = sign(SECRET, "r0", now=1000.0).split(".")[1]
    with pytest.raises(TokenError, match="signature"):
        verify(SECRET, f"{prefix}.{other}.{signature}", "r0", now=1001.0)
    with pytest.raises(TokenError, match="not a session token"):
        verify(SECRET, "deploy-token-looking-thing", "r0")


def test_a_token_opens_one_session_only():
    now = [1000.0]
    checker = SessionTokenChecker(SECRET, "r0", clock=lambda: now[0])
    token = sign(SECRET, "r0", ttl_seconds=30, now=1000.0)
    checker.accept(token)
    with pytest.raises(TokenError, match="already used"):
        checker.accept(token)
    now[0] = 2000.0  # long expired: the nonce is forgotten, and the token refused as expired
    with pytest.raises(TokenError, match="expired"):
        checker.accept(token)
    assert checker._used == {}


def test_a_short_secret_is_refused_with_advice():
    with pytest.raises(ValueError, match="at least 16"):
        check_secret("short")
