"""The server's logs: no token in any line, no payload at full length, no flood of repeats.

Three things write logs in the server: uvicorn (its ``uvicorn.*`` loggers print every WebSocket
request line, query string included), airvoice (standard ``logging``) and Pipecat (loguru).
``configure_logging`` routes all three through the same guards:

- every ``token=`` value in a URL, and the server's own token anywhere, becomes ``***``;
- a line longer than ``MAX_LINE_CHARS`` is cut (Pipecat logs whole client messages);
- per session (``current_session``, set by the app for each WebSocket): the same message
  (its first 60 characters) is written at most ``BURST`` times per ``WINDOW_SECONDS``, and at
  most ``SESSION_LINES`` lines in all; the next line written says how many were dropped.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import weakref
from contextvars import ContextVar
from typing import Any

MAX_LINE_CHARS = 500
BURST = 5
WINDOW_SECONDS = 10.0
SESSION_LINES = 50
"""Lines one session may write per window, whatever they say."""
MAX_WINDOWS = 1024
MAX_MESSAGES_PER_WINDOW = 1024

current_session: ContextVar[str | None] = ContextVar("airvoice_log_session", default=None)
"""The session a log line belongs to (set by the app around each WebSocket session)."""

_QUERY_TOKEN = re.compile(r"((?:[?&]|%3F|%26)(?:token|access_token)(?:=|%3D))[^&\s\"'#]*", re.I)
_BEARER = re.compile(r"(bearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_SUBPROTOCOL = re.compile(r"(token\.)[A-Za-z0-9._~-]{8,}")
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def scrub(text: str, secret: str | None = None) -> str:
    """``text`` without tokens: query ``token=``, Bearer values, ``token.<T>`` and ``secret``."""
    if secret:
        text = text.replace(secret, "***")
    text = _QUERY_TOKEN.sub(r"\1***", text)
    text = _BEARER.sub(r"\1***", text)
    return _SUBPROTOCOL.sub(r"\1***", text)


def shorten(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [{len(text) - limit} more characters not logged]"


class _Window:
    """What one session (or the server outside sessions) logged in the current window."""

    __slots__ = ("carried", "dropped", "lines", "seen", "start")

    def __init__(self, start: float, carried: int = 0) -> None:
        self.start, self.lines, self.dropped, self.carried = start, 0, 0, carried
        self.seen: dict[str, int] = {}


class RepeatLimiter:
    """Rate limits per session: in each ``window`` seconds a session's lines go through at most
    ``burst`` times per message (its first 60 characters) and ``session_lines`` times in all.

    The session is ``current_session`` where the line is logged (asyncio tasks inherit it), so
    one session's repeats never silence another's, and varied messages cannot flood the log.
    Lines outside any session are limited per message only. ``forget_session`` drops a
    session's counters when it ends; the table never holds more than ``MAX_WINDOWS``.
    """

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW_SECONDS,
        session_lines: int = SESSION_LINES,
    ) -> None:
        self.burst, self.window, self.session_lines = burst, window, session_lines
        self._windows: dict[str | None, _Window] = {}
        self._lock = threading.Lock()
        _LIMITERS.add(self)

    def allow(self, message: str, session: str | None = None) -> tuple[bool, int]:
        """Whether to write ``message`` now, and how many earlier lines of the same session
        were not written (reported once, on the next line that is)."""
        session = session or current_session.get()
        key = message[:60]
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(session)
            if window is None or now - window.start >= self.window:
                carried = 0 if window is None else window.carried + window.dropped
                window = self._windows[session] = _Window(now, carried)
                if len(self._windows) > MAX_WINDOWS:
                    self._trim(now)
            count = window.seen.get(key, 0)
            flooding = session is not None and window.lines >= self.session_lines
            if count >= self.burst or flooding:
                window.dropped += 1
                return False, 0
            if count or len(window.seen) < MAX_MESSAGES_PER_WINDOW:
                window.seen[key] = count + 1
            window.lines += 1
            dropped, window.carried = window.carried, 0
            return True, dropped

    def forget(self, session: str) -> int:
        """Drop ``session``'s counters; how many of its lines were not written."""
        with self._lock:
            window = self._windows.pop(session, None)
        return 0 if window is None else window.carried + window.dropped

    @property
    def sessions(self) -> int:
        """Sessions with counters (bounded; for tests and metrics)."""
        with self._lock:
            return sum(1 for key in self._windows if key is not None)

    def _trim(self, now: float) -> None:
        """Forget expired windows; if sessions still overflow the table, the oldest."""
        cutoff = now - self.window
        self._windows = {k: w for k, w in self._windows.items() if w.start >= cutoff}
        while len(self._windows) > MAX_WINDOWS:
            oldest = min(self._windows, key=lambda k: self._windows[k].start)
            del self._windows[oldest]


_LIMITERS: weakref.WeakSet[RepeatLimiter] = weakref.WeakSet()


def forget_session(session: str) -> int:
    """A session ended: drop its counters in every limiter; how many lines were not written."""
    return sum(limiter.forget(session) for limiter in list(_LIMITERS))


class ScrubFilter(logging.Filter):
    """A ``logging`` filter: tokens out, long lines cut, repeated lines rate-limited."""

    def __init__(self, secret: str | None = None, limiter: RepeatLimiter | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.limiter = limiter or RepeatLimiter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_airvoice_scrubbed", False):
            return True
        record.msg = shorten(scrub(str(record.msg), self.secret))
        if isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks args: keep the tuple, scrub its strings.
            record.args = tuple(
                shorten(scrub(a, self.secret)) if isinstance(a, str) else a for a in record.args
            )
        elif isinstance(record.args, dict):
            record.args = {
                k: shorten(scrub(v, self.secret)) if isinstance(v, str) else v
                for k, v in record.args.items()
            }
        if record.exc_text:
            record.exc_text = scrub(record.exc_text, self.secret)
        try:
            text = record.getMessage()
        except Exception:  # arguments that do not fit the format: logging reports it later
            text = str(record.msg)
        allowed, dropped = self.limiter.allow(text)
        if dropped:
            record.msg = f"{record.msg} ({dropped} earlier lines were not logged: rate limit)"
        record._airvoice_scrubbed = True
        return allowed


def install_filter(scrubber: ScrubFilter) -> None:
    """Put ``scrubber`` on the uvicorn loggers and on every handler they and the root use."""
    for name in ("", *_UVICORN_LOGGERS):
        logger = logging.getLogger(name)
        for owner in (logger, *logger.handlers):
            for old in [f for f in owner.filters if isinstance(f, ScrubFilter)]:
                owner.removeFilter(old)
            owner.addFilter(scrubber)


def configure_pipecat_logging(level: str, secret: str | None, limiter: RepeatLimiter) -> None:
    """Pipecat's loguru logger at the server's level, through the same guards."""
    from loguru import logger

    def patch(record: Any) -> None:
        record["message"] = shorten(scrub(record["message"], secret))

    def keep(record: Any) -> bool:
        allowed, dropped = limiter.allow(record["message"])
        if dropped:
            record["message"] += f" ({dropped} earlier lines were not logged: rate limit)"
        return allowed

    logger.remove()
    logger.configure(patcher=patch)
    logger.add(sys.stderr, level=level.upper(), filter=keep, colorize=False)


def configure_logging(level: str, secret: str | None = None) -> ScrubFilter:
    """Set up airvoice's, uvicorn's and Pipecat's logs at ``level``, scrubbed of ``secret``."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level.upper())
    # At debug level the operator asked for every line of a turn: only repeats are limited.
    session_lines = 10**9 if level.lower() == "debug" else SESSION_LINES
    scrubber = ScrubFilter(secret, RepeatLimiter(session_lines=session_lines))
    install_filter(scrubber)
    configure_pipecat_logging(level, secret, scrubber.limiter)
    return scrubber
