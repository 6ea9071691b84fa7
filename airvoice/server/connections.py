"""Connection guards below the app: a deadline for the HTTP handshake, a cap per address.

uvicorn's HTTP/1.1 protocol (h11) keeps a connection open for as long as its request headers
have not all arrived, and the app never hears of it: 3,000 half-open handshakes hold 3,000 file
descriptors. These protocol classes (given to uvicorn as ``http=`` and ``ws=``):

- close a connection whose request has not been read completely within ``handshake_seconds``;
- refuse (close at once) a new connection from an address that already holds
  ``per_address`` of them, counting each connection until it closes, WebSocket or not;
- answer an oversized request head with 431 (h11 says 400) and close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)

_H11_DEFAULT_LIMIT = 16 * 1024  # h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE


@dataclass
class ConnectionGuard:
    """Open connections per client address, shared by the protocol instances of one server."""

    per_address: int
    handshake_seconds: float
    open: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    timed_out: int = 0
    _owner: dict[int, str] = field(default_factory=dict)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection; False when its address already holds the maximum."""
        address = _address(transport)
        if self.open[address] >= self.per_address:
            self.refused += 1
            return False
        self.open[address] += 1
        self._owner[id(transport)] = address
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        """Forget a closed connection (once, whichever protocol held it last)."""
        address = self._owner.pop(id(transport), None)
        if address is not None:
            self.open[address] -= 1
            if self.open[address] <= 0:
                del self.open[address]

    @property
    def total(self) -> int:
        return sum(self.open.values())


def _address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else str(peer)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a handshake deadline, a per-address cap and 431."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.guard: ConnectionGuard = config.airvoice_guard
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(transport):
            log.warning("refused a connection: %s has too many open", _address(transport))
            transport.abort()
            return
        self._deadline = self.loop.call_later(self.guard.handshake_seconds, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        """The request head did not arrive in time (or a keep-alive request stalled)."""
        self._deadline = None
        if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and self.cycle is None:
            self.guard.timed_out += 1
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None:  # the request head has been read: the app takes over
            self._cancel_deadline()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_deadline()
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        """h11 gave up on the request: 414 or 431 when its head is over the size limit."""
        status = 400
        buffered = self.conn.trailing_data[0]
        limit = self.config.h11_max_incomplete_event_size or _H11_DEFAULT_LIMIT
        if len(buffered) > limit:
            too_long_url = b"\r\n" not in buffered[:limit]
            status = 414 if too_long_url else 431
            msg = "URI too long." if too_long_url else "Request header fields too large."
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
        with contextlib.suppress(h11.LocalProtocolError):
            self.transport.write(
                self.conn.send(h11.Response(status_code=status, headers=headers))
                + self.conn.send(h11.Data(data=msg.encode("ascii")))
                + self.conn.send(h11.EndOfMessage())
            )
        self.transport.close()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, releasing the connection's place in the guard at close."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.config.airvoice_guard.release(self.transport)
        super().connection_lost(exc)
