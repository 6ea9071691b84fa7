"""The server's logs: no token in any line, no payload at full length, no flood of repeats.

Three things write logs in the server: uvicorn (its ``uvicorn.*`` loggers print every WebSocket
request line, query string included), airvoice (standard ``logging``) and Pipecat (loguru).
``configure_logging`` routes all three through the same guards:

- every ``token=`` value in a URL, and the server's own token anywhere, becomes ``***``;
- a line longer than ``MAX_LINE_CHARS`` is cut (Pipecat logs whole client messages);
- the same message (its first 60 characters) is written at most ``BURST`` times per
  ``WINDOW_SECONDS``; the next line says how many were dropped.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import Any

MAX_LINE_CHARS = 500
BURST = 5
WINDOW_SECONDS = 10.0

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


class RepeatLimiter:
    """Lets the same message through at most ``burst`` times per ``window`` seconds."""

    def __init__(self, burst: int = BURST, window: float = WINDOW_SECONDS) -> None:
        self.burst, self.window = burst, window
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def allow(self, message: str) -> tuple[bool, int]:
        """Whether to write ``message`` now, and how many like it were dropped before."""
        key = message[:60]
        now = time.monotonic()
        with self._lock:
            start, count = self._seen.get(key, (now, 0))
            if now - start >= self.window:
                dropped = max(0, count - self.burst)
                self._seen[key] = (now, 1)
                return True, dropped
            self._seen[key] = (start, count + 1)
            if len(self._seen) > 1000:  # forget old keys, so the table stays small
                cutoff = now - self.window
                self._seen = {k: v for k, v in self._seen.items() if v[0] >= cutoff}
            return count < self.burst, 0


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
            record.msg = f"{record.msg} ({dropped} similar lines were not logged)"
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
            record["message"] += f" ({dropped} similar lines were not logged)"
        return allowed

    logger.remove()
    logger.configure(patcher=patch)
    logger.add(sys.stderr, level=level.upper(), filter=keep, colorize=False)


def configure_logging(level: str, secret: str | None = None) -> ScrubFilter:
    """Set up airvoice's, uvicorn's and Pipecat's logs at ``level``, scrubbed of ``secret``."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level.upper())
    scrubber = ScrubFilter(secret)
    install_filter(scrubber)
    configure_pipecat_logging(level, secret, scrubber.limiter)
    return scrubber
