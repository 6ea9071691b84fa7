"""Why a connection failed, each with what to do next."""

from __future__ import annotations

from airvoice.errors import AirvoiceError


class ClientError(AirvoiceError):
    """The client could not talk to the server."""

    exit_code = 1


class AuthError(ClientError):
    """The server refused the session token (close code 4001)."""

    exit_code = 3


class ServerBusyError(ClientError):
    """The server is full (1008), still loading (1013) or shutting down (1001)."""

    exit_code = 4


class BadSettingsError(ClientError):
    """The server refused the voice or speed asked for (close code 4400)."""

    exit_code = 2


class ConnectError(ClientError):
    """The server could not be reached at all."""

    exit_code = 5


def error_for_close(code: int | None, reason: str) -> ClientError | None:
    """The error a close code means, or None for a normal close."""
    if code == 4001:
        return AuthError(
            f"the server refused the session token ({reason}); pass the token the server "
            "printed at start with --token or AIRVOICE_TOKEN"
        )
    if code == 1008:
        return ServerBusyError(f"the server is full ({reason}); try again in a moment")
    if code in (1013, 1001):
        return ServerBusyError(f"the server is not taking sessions ({reason}); try again later")
    if code == 4400:
        return BadSettingsError(f"the server refused the session settings: {reason}")
    return None
