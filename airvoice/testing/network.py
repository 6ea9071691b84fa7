"""A socket guard: refuse every connection that leaves this machine."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class NetworkBlockedError(ConnectionRefusedError):
    """A connection to a non-loopback address was attempted while the network was blocked."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name that would need DNS


@contextlib.contextmanager
def block_network() -> Iterator[list[str]]:
    """Inside, connecting to anything but loopback raises; yields the list of refused targets."""
    refused: list[str] = []
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_getaddrinfo = socket.getaddrinfo

    def check(address: Any) -> None:
        if not _is_loopback(address):
            refused.append(str(address))
            raise NetworkBlockedError(f"network access to {address!r} is blocked in this test")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return original_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host is not None and not _is_loopback((host, 0)):
            refused.append(str(host))
            raise NetworkBlockedError(f"name lookup of {host!r} is blocked in this test")
        return original_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo
    try:
        yield refused
    finally:
        socket.socket.connect = original_connect  # type: ignore[method-assign]
        socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]
        socket.getaddrinfo = original_getaddrinfo


_SITECUSTOMIZE = """\
from airvoice.testing.network import block_network

_guard = block_network()
_guard.__enter__()  # for the whole process: any non-loopback connection raises
"""


def loopback_only_env(
    directory: Path, base: dict[str, str] | None = None, **extra: str
) -> dict[str, str]:
    """An environment whose Python processes can reach loopback only (a sitecustomize guard
    in ``directory``), with this interpreter's scripts first on ``PATH``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), env.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env
