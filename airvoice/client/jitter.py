"""A playback jitter buffer: smooths network arrival, flushes at once on barge-in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class JitterBuffer:
    """PCM16 mono in from the network, fixed-size frames out to the speaker.

    Playback starts once ``prebuffer_ms`` are queued; an underrun plays silence and waits for
    the prebuffer again. ``flush()`` drops everything not yet played (the server's
    ``interruption``). Safe to use from an audio callback thread and the event loop at once.
    """

    def __init__(
        self,
        sample_rate: int = 24_000,
        prebuffer_ms: float = 60.0,
        max_ms: float = 30_000.0,
        on_first_audio: Callable[[float], None] | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self._prebuffer = int(sample_rate * prebuffer_ms / 1000) * 2
        self._max = int(sample_rate * max_ms / 1000) * 2
        self._data = bytearray()
        self._lock = threading.Lock()
        self._playing = False
        self._stream_ended = False
        self.on_first_audio = on_first_audio
        self.on_played: Callable[[bytes], None] | None = None
        """Called with every chunk handed to the speaker (the echo canceller's far end)."""
        self.last_audio_at = 0.0
        """``time.perf_counter()`` when audio last reached the speaker."""
        self.underruns = 0
        self.dropped_bytes = 0

    def push(self, pcm: bytes) -> None:
        """Queue audio from the server."""
        with self._lock:
            self._data += pcm
            self._stream_ended = False
            overflow = len(self._data) - self._max
            if overflow > 0:  # never grow without bound: drop the oldest
                del self._data[:overflow]
                self.dropped_bytes += overflow

    def end_of_stream(self) -> None:
        """The bot stopped speaking: play out what is queued without waiting to prebuffer."""
        with self._lock:
            self._stream_ended = True

    def flush(self) -> int:
        """Drop every queued byte; returns how many were dropped."""
        with self._lock:
            dropped = len(self._data)
            self._data.clear()
            self._playing = False
            return dropped

    @property
    def buffered_ms(self) -> float:
        with self._lock:
            return len(self._data) / 2 / self.sample_rate * 1000

    @property
    def is_playing(self) -> bool:
        """True while bot audio is being played out."""
        return self._playing

    def pull(self, num_bytes: int) -> bytes:
        """Exactly ``num_bytes`` for the speaker: audio when there is some, else silence."""
        with self._lock:
            if not self._playing:
                ready = len(self._data) >= self._prebuffer or (self._stream_ended and self._data)
                if not ready:
                    silence = bytes(num_bytes)
                    if self.on_played is not None:
                        self.on_played(silence)
                    return silence
                self._playing = True
                first = True
            else:
                first = False
            chunk = bytes(self._data[:num_bytes])
            del self._data[:num_bytes]
            if len(chunk) < num_bytes:
                if not self._stream_ended:
                    self.underruns += 1
                self._playing = False
                chunk += bytes(num_bytes - len(chunk))
            now = time.perf_counter()
            self.last_audio_at = now
        if first and self.on_first_audio is not None:
            self.on_first_audio(now)
        if self.on_played is not None:
            self.on_played(chunk)
        return chunk
