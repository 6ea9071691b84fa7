"""Acoustic echo cancellation for speakers without headphones (WebRTC's APM via ``livekit``).

The far end is what the speaker plays (24 kHz, resampled to 16 kHz); the near end is the
microphone (16 kHz). Both go through in 10 ms frames. Optional: ``pip install 'airvoice[aec]'``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from airvoice.client.audio import AudioDeviceError
from airvoice.protocol import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE

FRAME = INPUT_SAMPLE_RATE // 100  # 10 ms at 16 kHz


class EchoCanceller:
    """Removes the bot's own voice from the microphone signal."""

    def __init__(self, delay_ms: int = 40, noise_suppression: bool = True) -> None:
        try:
            from livekit import rtc
        except ImportError as exc:
            raise AudioDeviceError(
                "echo cancellation needs the livekit package: pip install 'airvoice[aec]' "
                "(or use headphones and --full-duplex, or the default half duplex)"
            ) from exc
        import soxr

        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True,
            noise_suppression=noise_suppression,
            high_pass_filter=True,
            auto_gain_control=False,
        )
        self._apm.set_stream_delay_ms(delay_ms)
        self._resampler = soxr.ResampleStream(
            OUTPUT_SAMPLE_RATE, INPUT_SAMPLE_RATE, 1, dtype="int16"
        )
        self._far = bytearray()
        self._near = bytearray()
        self._lock = threading.Lock()  # the player and the microphone run on different threads

    def _frame(self, pcm: bytes) -> Any:
        return self._rtc.AudioFrame(pcm, INPUT_SAMPLE_RATE, 1, FRAME)

    def far_end(self, pcm24: bytes) -> None:
        """Audio the speaker is about to play (24 kHz PCM16)."""
        samples = np.frombuffer(pcm24, dtype="<i2")
        with self._lock:
            self._far += self._resampler.resample_chunk(samples).astype("<i2").tobytes()
            while len(self._far) >= 2 * FRAME:
                self._apm.process_reverse_stream(self._frame(bytes(self._far[: 2 * FRAME])))
                del self._far[: 2 * FRAME]

    def near_end(self, pcm16: bytes) -> bytes:
        """Microphone audio (16 kHz PCM16) with the echo removed; same length out as in."""
        out = bytearray()
        with self._lock:
            self._near += pcm16
            while len(self._near) >= 2 * FRAME:
                frame = self._frame(bytes(self._near[: 2 * FRAME]))
                del self._near[: 2 * FRAME]
                self._apm.process_stream(frame)
                out += bytes(frame.data)
        return bytes(out) + bytes(len(pcm16) - len(out))
