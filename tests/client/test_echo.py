"""Echo cancellation measured on a recorded echo: the bot's real voice through a simulated room."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from airvoice.client import VoiceClient
from airvoice.client.echo import EchoCanceller

BOT = (
    "This is the assistant speaking through your laptop speakers, and the microphone hears it "
    "again. It keeps talking for a while so that the canceller can adapt to the room."
)


@pytest.fixture(scope="module")
def recording(engines):
    """The bot's voice (24 kHz) and what a mic 40 ms away in a small room records (16 kHz)."""
    far24 = engines.kokoro.synthesize(BOT, "jm_kumo").astype(np.float32)
    far16 = soxr.resample(far24, 24000, 16000)
    rng = np.random.default_rng(0)
    room = np.zeros(1600)
    room[640] = 0.6  # direct path after 40 ms
    room[640:] += 0.2 * np.exp(-np.arange(960) / 150) * rng.standard_normal(960)
    echo = np.convolve(far16, room)[: len(far16)] + 30 * rng.standard_normal(len(far16))
    user = soxr.resample(
        engines.kokoro.synthesize("Wait, I have a question about the weather.", "jf_alpha")
        .astype(np.float32), 24000, 16000,
    )  # fmt: skip
    return far24, echo, user


def _cancel(far24, near16):
    canceller = EchoCanceller(noise_suppression=False)
    out = []
    for i in range(len(near16) // 320):
        canceller.far_end(
            np.clip(far24[i * 480 : (i + 1) * 480], -32768, 32767).astype("<i2").tobytes()
        )
        chunk = np.clip(near16[i * 320 : (i + 1) * 320], -32768, 32767).astype("<i2").tobytes()
        cleaned = canceller.near_end(chunk)
        assert len(cleaned) == len(chunk)
        out.append(np.frombuffer(cleaned, dtype="<i2"))
    return np.concatenate(out).astype(np.float64)


def test_echo_is_removed(recording):
    far24, echo, _ = recording
    out = _cancel(far24, echo)
    tail = slice(len(out) // 3, len(out))  # after the canceller has adapted
    erle = 10 * np.log10(np.sum(echo[tail] ** 2) / max(np.sum(out[tail] ** 2), 1.0))
    print(f"\nERLE {erle:.1f} dB")
    assert erle > 20


def test_the_user_still_gets_through_while_the_bot_speaks(recording):
    far24, echo, user = recording
    start = len(echo) // 2
    near = echo.copy()
    near[start : start + len(user)] += user[: len(near) - start]
    out = _cancel(far24, near)[start : start + len(user)]
    said = user[: len(out)]
    kept_db = 10 * np.log10(np.sum(out**2) / np.sum(said**2))
    best = max(
        np.dot(out[lag:], said[: len(said) - lag]) / np.sqrt(np.dot(out, out) * np.dot(said, said))
        for lag in range(0, 400, 4)
    )
    print(f"\ndouble talk: user energy kept {kept_db:.1f} dB, correlation {best:.2f}")
    assert kept_db > -6 and best > 0.4


def test_voice_client_with_aec_keeps_the_mic_open():
    client = VoiceClient("ws://127.0.0.1:9/ws", duplex="aec")
    assert client.echo is not None
    client.buffer.push(bytes(24000))
    client.buffer.pull(960)
    assert client._mic_open()  # no gating: the canceller takes the bot out instead
