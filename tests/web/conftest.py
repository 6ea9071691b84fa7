"""The web client in headless Chromium (Debian's ``chromium``, driven by Playwright), against a
real server on 127.0.0.1 with the offline models: tiny Ultravox, real int8 Kokoro."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from airvoice.testing.server import VOICE, spoken

LEAD_SILENCE_SECONDS = 2.0  # the fake microphone starts with getUserMedia: time to connect
TAIL_SILENCE_SECONDS = 30.0  # Chromium loops the file: no second question within a test


@pytest.fixture(scope="session")
def speech_wav(engines, tmp_path_factory):
    """A spoken question in Kokoro's real voice, padded with silence, as a 16 kHz WAV file for
    Chromium's fake microphone."""
    speech = spoken(engines, voice=VOICE)
    lead = np.zeros(int(LEAD_SILENCE_SECONDS * 16000), np.int16)
    tail = np.zeros(int(TAIL_SILENCE_SECONDS * 16000), np.int16)
    path = tmp_path_factory.mktemp("web-audio") / "question.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(np.concatenate([lead, speech, tail]).tobytes())
    return path
