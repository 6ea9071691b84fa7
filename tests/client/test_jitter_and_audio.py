"""The jitter buffer, the audio I/O and the sound-device callbacks, without a sound card."""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import pytest

from airvoice.client import ArrayMicrophone, JitterBuffer, read_wav, write_wav
from airvoice.client.audio import (
    IN_FRAME_BYTES,
    AudioDeviceError,
    SoundDeviceMicrophone,
    SoundDevicePlayer,
    list_devices,
)


def test_prebuffer_then_play_then_underrun():
    buffer = JitterBuffer(sample_rate=24000, prebuffer_ms=60)
    frame = 960  # 20 ms
    buffer.push(b"\x01\x00" * 480)  # 20 ms: below the prebuffer
    assert buffer.pull(frame) == bytes(frame) and not buffer.is_playing
    buffer.push(b"\x01\x00" * 960)  # now 60 ms queued
    assert buffer.pull(frame) == b"\x01\x00" * 480 and buffer.is_playing
    assert buffer.pull(frame) != bytes(frame)
    assert buffer.pull(frame) != bytes(frame)
    out = buffer.pull(frame)  # underrun: silence, and wait for the prebuffer again
    assert out == bytes(frame) and not buffer.is_playing and buffer.underruns == 1


def test_flush_drops_everything_at_once():
    first = []
    buffer = JitterBuffer(prebuffer_ms=20, on_first_audio=first.append)
    buffer.push(b"\x05\x00" * 24000)  # one second
    assert buffer.pull(960) != bytes(960) and len(first) == 1
    dropped = buffer.flush()
    assert dropped == 48000 - 960 and buffer.buffered_ms == 0
    assert buffer.pull(960) == bytes(960)  # nothing of the old reply is played


def test_end_of_stream_plays_a_short_tail_without_prebuffer():
    buffer = JitterBuffer(prebuffer_ms=200)
    buffer.push(b"\x07\x00" * 100)
    assert buffer.pull(960) == bytes(960)
    buffer.end_of_stream()
    assert buffer.pull(960).startswith(b"\x07\x00" * 100)
    assert buffer.underruns == 0


def test_buffer_is_bounded():
    buffer = JitterBuffer(max_ms=100)
    buffer.push(bytes(24000 * 2))  # one second
    assert buffer.buffered_ms == pytest.approx(100, abs=1) and buffer.dropped_bytes > 0


async def test_array_microphone_paces_20ms_frames_in_real_time():
    samples = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)  # 0.5 s at 16 kHz
    mic = ArrayMicrophone(samples, 16000, then_silence=False)
    started = time.perf_counter()
    frames = [f async for f in mic.frames()]
    elapsed = time.perf_counter() - started
    assert len(frames) == 25 and all(len(f) == IN_FRAME_BYTES for f in frames)
    assert 0.45 < elapsed < 0.8
    assert b"".join(frames) == samples.astype("<i2").tobytes()


async def test_array_microphone_resamples_to_16k():
    tone = np.sin(2 * np.pi * 300 * np.arange(48000) / 48000).astype(np.float32) * 0.5
    mic = ArrayMicrophone(tone, 48000, then_silence=False)
    assert len(mic.pcm) == 16000 * 2  # one second at 16 kHz
    pcm = np.frombuffer(mic.pcm, dtype="<i2")
    assert abs(np.argmax(np.abs(np.fft.rfft(pcm))) - 300) <= 1


def test_wav_round_trip_and_bad_files(tmp_path):
    pcm = (np.arange(2400) % 200 - 100).astype(np.int16)
    write_wav(tmp_path / "a.wav", pcm, 24000)
    back, rate = read_wav(tmp_path / "a.wav")
    assert rate == 24000 and np.array_equal(back, pcm)
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(AudioDeviceError, match="cannot read"):
        read_wav(tmp_path / "bad.wav")


def test_sound_device_callbacks_driven_directly():
    """The PortAudio callbacks, called as PortAudio's thread would call them."""
    buffer = JitterBuffer(prebuffer_ms=20)
    player = SoundDevicePlayer()
    player.buffer = buffer
    buffer.push(b"\x02\x00" * 480)
    out = bytearray(960)
    player._fill(memoryview(out), 480, None, None)
    assert bytes(out) == b"\x02\x00" * 480
    player._fill(memoryview(out), 480, None, None)
    assert bytes(out) == bytes(960)  # nothing queued: silence, never stale audio

    async def capture():
        mic = SoundDeviceMicrophone()
        mic._loop = asyncio.get_running_loop()
        for i in range(3):
            mic._on_audio(bytes([i]) * IN_FRAME_BYTES, IN_FRAME_BYTES // 2, None, None)
        await asyncio.sleep(0.01)
        return [mic._queue.get_nowait() for _ in range(3)]

    blocks = asyncio.run(capture())
    assert [b[0] for b in blocks] == [0, 1, 2]


def test_missing_sound_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # what `import` sees when absent
    with pytest.raises(AudioDeviceError, match=r"pip install 'airvoice\[audio\]'"):
        list_devices()
