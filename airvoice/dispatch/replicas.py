"""The replicas behind a dispatcher: what each reports on ``/health``, and which gets a session.

Each replica is polled on its own (``GET /health``, which answers JSON even with a 503). A
replica gets a session only if it answered its last poll with ``status: ok``, is not draining,
has a free session slot after the sessions this dispatcher sent it since that poll, and (with
the vLLM engine) its KV cache is not nearly full. Among those, the one with the largest share
of free slots wins, then the emptier KV cache, then the one chosen least recently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger(__name__)


def normalize_replica_url(url: str) -> str:
    """``http(s)://host[:port]`` (the server's base URL) from what a user typed."""
    parts = urlsplit(url.strip())
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not a replica URL; give the server's base URL, like https://host:8000"
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/ws").removesuffix("/health")
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def websocket_url(base: str) -> str:
    """The ``ws(s)://.../ws`` session URL of a replica's base URL."""
    parts = urlsplit(base)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/ws", "", ""))


@dataclass
class Replica:
    """One replica and the last thing it said about itself."""

    url: str
    replica_id: str | None = None
    reachable: bool = False
    status: str = "unknown"
    reason: str = "not polled yet"
    sessions: int = 0
    max_sessions: int = 0
    free_sessions: int = 0
    draining: bool = False
    kv_cache_usage: float | None = None
    sessions_started: int | None = None
    """The replica's count of sessions ever opened, as of its last report."""
    polled_at: float = 0.0
    """When the poll behind these numbers began (monotonic seconds)."""
    reservations: list[float] = field(default_factory=list)
    """When this dispatcher sent it sessions that its last report may not count yet."""
    last_chosen: float = 0.0
    slow_polls: int = 0
    """Polls in a row that timed out (a busy replica answers late; a dead one refuses)."""

    def effective_free(self) -> int:
        return self.free_sessions - len(self.reservations)

    def eligible(self, kv_cache_full: float) -> bool:
        return (
            self.reachable
            and self.status == "ok"
            and not self.draining
            and self.replica_id is not None
            and self.effective_free() > 0
            and (self.kv_cache_usage is None or self.kv_cache_usage < kv_cache_full)
        )

    def summary(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "replica": self.replica_id,
            "status": self.status if self.reachable else "unreachable",
            "reason": self.reason,
            "sessions": self.sessions,
            "max_sessions": self.max_sessions,
            "free_sessions": max(0, self.effective_free()),
            "draining": self.draining,
            "kv_cache_usage": self.kv_cache_usage,
        }

    def apply(self, report: dict[str, Any], polled_at: float, settle: float) -> None:
        """Take in a ``/health`` body from a poll that began at ``polled_at``."""
        self.reachable = True
        self.slow_polls = 0
        self.status = str(report.get("status", "unknown"))
        self.reason = str(report.get("reason", ""))
        self.sessions = int(report.get("sessions", 0))
        self.max_sessions = int(report.get("max_sessions", 0))
        free = report.get("free_sessions", self.max_sessions - self.sessions)
        self.free_sessions = max(0, int(free))
        self.draining = bool(report.get("draining", False))
        replica = report.get("replica")
        self.replica_id = str(replica) if replica else None
        engine = report.get("engine")
        usage = engine.get("kv_cache_usage") if isinstance(engine, dict) else None
        self.kv_cache_usage = float(usage) if isinstance(usage, int | float) else None
        self.polled_at = polled_at
        started = report.get("sessions_started")
        if isinstance(started, int) and self.sessions_started is not None:
            # Sessions opened since the last report are in this report's numbers: the oldest
            # reservations were those sessions. One sent long ago that never came holds nothing.
            del self.reservations[: max(0, started - self.sessions_started)]
            self.reservations = [t for t in self.reservations if t > polled_at - 10 * settle]
        else:
            # A replica that does not count its sessions: one sent well before this poll began
            # is in its numbers by now.
            self.reservations = [t for t in self.reservations if t > polled_at - settle]
        self.sessions_started = started if isinstance(started, int) else None

    def unreachable(self, reason: str, polled_at: float) -> None:
        self.reachable = False
        self.polled_at = polled_at
        self.status = "unreachable"
        self.reason = reason
        self.reservations.clear()
        self.sessions_started = None  # a replica that comes back counts from zero again


@dataclass
class PoolSettings:
    poll_interval: float = 1.0
    poll_timeout: float = 2.0
    settle_seconds: float = 1.0
    kv_cache_full: float = 0.95
    slow_polls_allowed: int = 3
    """Timed-out polls in a row before a replica counts as down (a refused connection: at once)."""


class ReplicaPool:
    """Polls every replica's ``/health`` and picks one for each new session."""

    def __init__(self, urls: list[str], settings: PoolSettings | None = None) -> None:
        self.settings = settings or PoolSettings()
        self.replicas: dict[str, Replica] = {}
        self._http: httpx.AsyncClient | None = None
        self._pollers: dict[str, asyncio.Task[None]] = {}
        self._refreshing: asyncio.Future[Any] | None = None
        self.set_urls(urls)

    def set_urls(self, urls: list[str]) -> None:
        """Replace the set of replicas (new ones are polled at once, gone ones forgotten)."""
        wanted = [normalize_replica_url(u) for u in urls]
        for url in list(self.replicas):
            if url not in wanted:
                del self.replicas[url]
                task = self._pollers.pop(url, None)
                if task is not None:
                    task.cancel()
        for url in wanted:
            if url not in self.replicas:
                self.replicas[url] = Replica(url)
                if self._http is not None:
                    self._pollers[url] = asyncio.create_task(self._poll_forever(url))

    async def start(self) -> None:
        self._http = httpx.AsyncClient(timeout=self.settings.poll_timeout, follow_redirects=False)
        await self.refresh()
        for url in self.replicas:
            self._pollers[url] = asyncio.create_task(self._poll_forever(url))

    async def stop(self) -> None:
        for task in self._pollers.values():
            task.cancel()
        for task in self._pollers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._pollers.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def refresh(self) -> None:
        """Poll every replica once, now (callers that come meanwhile share the poll)."""
        if self._refreshing is None or self._refreshing.done():
            polls = asyncio.gather(*(self._poll(url) for url in list(self.replicas)))
            self._refreshing = asyncio.ensure_future(polls)
        await asyncio.shield(self._refreshing)

    async def _poll_forever(self, url: str) -> None:
        while url in self.replicas:
            await asyncio.sleep(self.settings.poll_interval)
            await self._poll(url)

    async def _poll(self, url: str) -> None:
        assert self._http is not None
        began = time.monotonic()
        try:
            response = await self._http.get(url + "/health")
            body = response.json()
            if not isinstance(body, dict) or "max_sessions" not in body:
                raise ValueError("no airvoice health report")
        except (httpx.HTTPError, ValueError) as exc:
            replica = self.replicas.get(url)
            if replica is not None and isinstance(exc, httpx.TimeoutException):
                replica.slow_polls += 1
                if replica.slow_polls < self.settings.slow_polls_allowed:
                    return  # busy, not gone: keep what it said last
            if replica is not None:
                if replica.reachable:
                    log.warning("replica %s stopped answering: %s", url, type(exc).__name__)
                replica.unreachable(f"{type(exc).__name__} on /health", began)
            return
        replica = self.replicas.get(url)
        if replica is not None:
            replica.apply(body, began, self.settings.settle_seconds)

    def choose(self) -> Replica | None:
        """The replica for a new session (its slot reserved), or None if none can take one."""
        now = time.monotonic()
        candidates = [r for r in self.replicas.values() if r.eligible(self.settings.kv_cache_full)]
        if not candidates:
            return None
        best = min(
            candidates,
            key=lambda r: (
                -r.effective_free() / max(1, r.max_sessions),
                r.kv_cache_usage or 0.0,
                r.last_chosen,
            ),
        )
        best.reservations.append(now)
        best.last_chosen = now
        return best

    def mark_failed(self, url: str, reason: str) -> None:
        """Forget a replica's slots until its next poll (a client could not reach it)."""
        replica = self.replicas.get(url)
        if replica is not None:
            replica.unreachable(reason, time.monotonic())

    def fresh(self) -> bool:
        """Whether every replica was polled within the last two poll intervals."""
        oldest = min((r.polled_at for r in self.replicas.values()), default=0.0)
        return time.monotonic() - oldest < 2 * self.settings.poll_interval

    def totals(self) -> tuple[int, int, int]:
        """(replicas answering, sessions open, session slots) over the whole pool; sessions sent
        that a replica's last report does not count yet are counted as open."""
        up = [r for r in self.replicas.values() if r.reachable]
        sessions = sum(r.sessions + len(r.reservations) for r in up)
        return len(up), sessions, sum(r.max_sessions for r in up)
