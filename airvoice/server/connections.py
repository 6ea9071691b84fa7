"""Connection guards below the app: a deadline for the HTTP handshake, a cap per address.

uvicorn's HTTP/1.1 protocol (h11) keeps a connection open for as long as its request headers
have not all arrived, and the app never hears of it: 3,000 half-open handshakes hold 3,000 file
descriptors. These protocol classes (given to uvicorn as ``http=`` and ``ws=``):

- close a connection whose request head has not been read completely within
  ``handshake_seconds``;
- answer 408 and close when a request body has not been read completely within
  ``body_seconds`` (a body that trickles in would otherwise hold the connection, and a handler
  that reads it, forever: every byte restarts uvicorn's keep-alive timer), and 413 without
  reading it when the declared ``Content-Length`` is over ``max_body_bytes``;
- refuse (close at once) a new connection from an address that already holds
  ``per_address`` of them, counting each connection until it closes, WebSocket or not;
- behind a ``trusted`` reverse proxy, count each request against the client address the proxy
  forwards (``airvoice.server.proxies``) instead, and answer 429 over the cap;
- answer a request line over 8 KB with 414 and a head over 16 KB with 431, and close.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from airvoice.config import Network
from airvoice.server.proxies import client_address, is_trusted

log = logging.getLogger(__name__)

MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEAD_BYTES = 16 * 1024
_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    413: b"Content Too Large",
    429: b"Too Many Requests",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
}


@dataclass
class ConnectionGuard:
    """Open connections per client address, shared by the protocol instances of one server."""

    per_address: int
    handshake_seconds: float
    body_seconds: float = 10.0
    max_body_bytes: int = 1 << 20
    trusted: tuple[Network, ...] = ()
    """Reverse proxies whose ``X-Forwarded-For`` names the client (none by default)."""
    open: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    timed_out: int = 0
    _owner: dict[int, str] = field(default_factory=dict)

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection; False when its address already holds the maximum. A
        trusted proxy's connections are admitted: each request is counted by ``move``."""
        address = _address(transport)
        if self.is_proxy(address):
            address = f"proxy {address}"  # uncapped until its first request names a client
        elif self.open[address] >= self.per_address:
            self.refused += 1
            return False
        self.open[address] += 1
        self._owner[id(transport)] = address
        return True

    def is_proxy(self, address: str) -> bool:
        return is_trusted(address, self.trusted)

    def move(self, transport: asyncio.BaseTransport, client: str) -> bool:
        """Count a proxied connection against ``client`` from now on (the proxy may reuse it
        for another client's request); False when ``client`` already holds the maximum."""
        current = self._owner.get(id(transport))
        if current == client:
            return True
        if self.open[client] >= self.per_address:
            self.refused += 1
            return False
        self.release(transport)
        self.open[client] += 1
        self._owner[id(transport)] = client
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
        self._cycle_armed: object = None
        self._body_deadline: asyncio.TimerHandle | None = None
        self._body_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._peer = _address(transport)
        self._via_proxy = self.guard.is_proxy(self._peer)
        if not self.guard.admit(transport):
            log.warning("refused a connection: its address has too many open")
            transport.abort()
            return
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_body_deadline()
        self.guard.release(self.transport)
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        """The next request head must arrive within the handshake time."""
        self._cancel_deadline()
        self._cycle_armed = self.cycle
        self._deadline = self.loop.call_later(self.guard.handshake_seconds, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        """No complete request head in time: close (an idle keep-alive connection too)."""
        self._deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.guard.timed_out += 1
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._deadline is not None and self.cycle is not self._cycle_armed:
            self._cancel_deadline()  # a new request head was read: the app takes over
        self._watch_body()

    def _watch_body(self) -> None:
        """A request whose body is still coming must finish it within the body time."""
        if self.transport.is_closing():
            return
        receiving = self.conn.their_state is h11.SEND_BODY
        if receiving and self._body_cycle is not self.cycle:
            self._cancel_body_deadline()
            self._body_cycle = self.cycle
            self._body_deadline = self.loop.call_later(self.guard.body_seconds, self._body_slow)
        elif not receiving:
            self._cancel_body_deadline()

    def _cancel_body_deadline(self) -> None:
        if self._body_deadline is not None:
            self._body_deadline.cancel()
            self._body_deadline = None
        self._body_cycle = None

    def _body_slow(self) -> None:
        """The body has not all arrived in time: 408 (unless a response has begun), close."""
        self._body_deadline = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        self.guard.timed_out += 1
        seconds = self.guard.body_seconds
        self._reject(
            408,
            f"The request body did not arrive within {seconds:g} s; send the whole request "
            "at once.",
            self.cycle,
        )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_deadline()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._cancel_deadline()
        super().handle_websocket_upgrade(event)

    def data_received(self, data: bytes) -> None:
        """Refuse a request head over the limits before h11 parses it (h11 only limits heads
        that arrive in pieces): 414 for a long request line, 431 for large headers."""
        if self.conn.their_state is h11.IDLE:
            buffered = self.conn.trailing_data[0] + data
            end = buffered.find(b"\r\n\r\n")
            head = buffered if end < 0 else buffered[:end]
            line_end = head.find(b"\r\n")
            line = len(head) if line_end < 0 else line_end
            if line > MAX_REQUEST_LINE_BYTES:
                self._reject(414, "URI too long.")
                return
            if len(head) > MAX_HEAD_BYTES:
                self._reject(431, "Request header fields too large.")
                return
            declared = _content_length(head) if end >= 0 else None
            if declared is not None and declared > self.guard.max_body_bytes:
                limit = self.guard.max_body_bytes
                self._reject(413, f"Request body too large: at most {limit} bytes are accepted.")
                return
            if end >= 0 and self._via_proxy and not self._admit_forwarded(head):
                return
        super().data_received(data)

    def _admit_forwarded(self, head: bytes) -> bool:
        """Count this request against the client the trusted proxy names; 429 over the cap."""
        values = _header_values(head, b"x-forwarded-for")
        forwarded = b",".join(values).decode("latin-1") if values else None
        client = client_address(self._peer, forwarded, self.guard.trusted)
        if self.guard.move(self.transport, client):
            return True
        log.warning("refused a request: its forwarded client address has too many open")
        self._reject(
            429,
            f"Too many connections from your address (at most {self.guard.per_address}); "
            "close some and try again.",
        )
        return False

    def send_400_response(self, msg: str) -> None:
        self._reject(400, msg)

    def _reject(self, status: int, msg: str, cycle: Any = None) -> None:
        """Answer ``status`` with ``msg`` and close, whatever state h11 is in. With the
        request's ``cycle``: the app sees a disconnect and writes nothing more, and when it has
        already begun a response the connection is only closed."""
        self._cancel_deadline()
        self._cancel_body_deadline()
        if cycle is not None:
            started = cycle.response_started
            cycle.disconnected = True  # the app writes nothing more; its receive() ends
            cycle.message_event.set()
            if started:
                self.transport.close()
                return
        reason = _REASONS.get(status, b"Error")
        body = msg.encode("ascii")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()


def _header_values(head: bytes, name: bytes) -> list[bytes]:
    """The values of header ``name`` (lower case) in a raw request head, in order."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            values.append(value.strip())
    return values


def _content_length(head: bytes) -> int | None:
    """The largest ``Content-Length`` a request head declares (None: none, or not a number,
    which h11 answers with 400)."""
    values = _header_values(head, b"content-length")
    if not all(v.isdigit() for v in values):
        return None
    return max((int(v) for v in values), default=None)


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, releasing the connection's place in the guard at close."""

    def connection_lost(self, exc: Exception | None) -> None:
        self.config.airvoice_guard.release(self.transport)
        super().connection_lost(exc)
