"""Audio in and out for the client: arrays and WAV files (tests, scripts), or sound devices.

Microphones yield 16 kHz mono PCM16 in 20 ms frames, paced in real time. Players pull 24 kHz
mono PCM16 from a :class:`~airvoice.client.jitter.JitterBuffer` at the speaker's pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from airvoice.client.jitter import JitterBuffer
from airvoice.errors import AirvoiceError
from airvoice.protocol import INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE

FRAME_SECONDS = 0.02
IN_FRAME_BYTES = int(INPUT_SAMPLE_RATE * FRAME_SECONDS) * 2
OUT_FRAME_BYTES = int(OUTPUT_SAMPLE_RATE * FRAME_SECONDS) * 2


class AudioDeviceError(AirvoiceError):
    """A sound device or audio file cannot be used."""


class Microphone(Protocol):
    """A source of 20 ms frames of 16 kHz mono PCM16, in real time."""

    def frames(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class Player(Protocol):
    """Plays what the jitter buffer holds, at the speaker's pace."""

    async def start(self, buffer: JitterBuffer) -> None: ...

    async def stop(self) -> None: ...


def to_pcm16(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Mono int16 at ``target_rate`` from float ([-1, 1]) or int16 samples, 1-D or (n, ch)."""
    data = np.asarray(samples)
    if data.ndim == 2:
        data = data.astype(np.float32).mean(axis=1)
    data = data.astype(np.float32) / 32768.0 if data.dtype == np.int16 else data.astype(np.float32)
    if rate != target_rate:
        import soxr

        data = soxr.resample(data, rate, target_rate)
    return np.clip(np.rint(data * 32767.0), -32768, 32767).astype(np.int16)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Samples (int16, mono) and rate of a 16-bit PCM WAV file, or a clear error."""
    try:
        with wave.open(str(path), "rb") as f:
            if f.getsampwidth() != 2:
                raise AudioDeviceError(
                    f"{path} is not 16-bit PCM WAV; convert it, e.g. `sox in.wav -b 16 out.wav`"
                )
            frames = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
            channels, rate = f.getnchannels(), f.getframerate()
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioDeviceError(f"cannot read {path} as a WAV file ({exc})") from exc
    samples = frames.reshape(-1, channels)
    mono = samples[:, 0] if channels == 1 else to_pcm16(samples, rate, rate)
    return mono.astype(np.int16), rate


def write_wav(path: str | Path, pcm16: np.ndarray | bytes, rate: int = OUTPUT_SAMPLE_RATE) -> None:
    """Write mono PCM16 to a WAV file."""
    data = pcm16 if isinstance(pcm16, bytes) else np.asarray(pcm16, dtype="<i2").tobytes()
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(data)


class ArrayMicrophone:
    """Plays an array (or WAV file) into the connection as if spoken, then silence."""

    def __init__(
        self, samples: np.ndarray, sample_rate: int = INPUT_SAMPLE_RATE, then_silence: bool = True
    ) -> None:
        self.pcm = to_pcm16(samples, sample_rate, INPUT_SAMPLE_RATE).tobytes()
        self.then_silence = then_silence
        self.finished = asyncio.Event()
        """Set when the whole array has been sent."""
        self._closed = False

    @classmethod
    def from_wav(cls, path: str | Path, then_silence: bool = True) -> ArrayMicrophone:
        samples, rate = read_wav(path)
        return cls(samples, rate, then_silence)

    async def frames(self) -> AsyncIterator[bytes]:
        start = time.perf_counter()
        index = 0
        while not self._closed:
            offset = index * IN_FRAME_BYTES
            if offset < len(self.pcm):
                chunk = self.pcm[offset : offset + IN_FRAME_BYTES]
                yield chunk + bytes(IN_FRAME_BYTES - len(chunk))
            else:
                self.finished.set()
                if not self.then_silence:
                    return
                yield bytes(IN_FRAME_BYTES)
            index += 1
            delay = start + index * FRAME_SECONDS - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    def close(self) -> None:
        self._closed = True


class MemorySink:
    """Collects played audio (and when each non-silent frame was played)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.voiced_at: list[float] = []

    def write(self, pcm: bytes) -> None:
        self.chunks.append(pcm)
        if any(pcm):
            self.voiced_at.append(time.perf_counter())

    def audio(self, trim_silence: bool = True) -> np.ndarray:
        """Everything played, as int16 (leading and trailing silence trimmed)."""
        pcm = np.frombuffer(b"".join(self.chunks), dtype="<i2")
        if trim_silence and pcm.size:
            voiced = np.nonzero(pcm)[0]
            pcm = pcm[voiced[0] : voiced[-1] + 1] if voiced.size else pcm[:0]
        return pcm


class ClockedPlayer:
    """A player without a sound card: pulls 20 ms every 20 ms and hands it to ``sink``."""

    def __init__(self, sink: Callable[[bytes], None] | MemorySink | None = None) -> None:
        self.sink = sink if sink is not None else MemorySink()
        self._task: asyncio.Task[None] | None = None

    async def start(self, buffer: JitterBuffer) -> None:
        write = self.sink.write if isinstance(self.sink, MemorySink) else self.sink
        self._task = asyncio.create_task(self._run(buffer, write))

    async def _run(self, buffer: JitterBuffer, write: Callable[[bytes], None]) -> None:
        start = time.perf_counter()
        index = 0
        while True:
            write(buffer.pull(OUT_FRAME_BYTES))
            index += 1
            await asyncio.sleep(max(0.0, start + index * FRAME_SECONDS - time.perf_counter()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise AudioDeviceError(
            "sound devices need the sounddevice package: pip install 'airvoice[audio]'"
        ) from exc
    except OSError as exc:  # PortAudio missing
        raise AudioDeviceError(
            "sounddevice cannot find the PortAudio library: install it "
            "(Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio)"
        ) from exc
    return sounddevice


def list_devices() -> list[dict[str, Any]]:
    """Sound devices: index, name, input and output channels, default rate."""
    sd = _sounddevice()
    return [
        {
            "index": i,
            "name": d["name"],
            "inputs": d["max_input_channels"],
            "outputs": d["max_output_channels"],
            "default_rate": d["default_samplerate"],
        }
        for i, d in enumerate(sd.query_devices())
    ]


def _device(device: str | int | None) -> str | int | None:
    if isinstance(device, str) and device.isdigit():
        return int(device)
    return device


def _start_stream(
    factory: Callable[..., Any],
    what: str,
    device: str | int | None,
    rate: int,
    callback: Callable[..., None],
) -> Any:
    """Open and start a mono PCM16 PortAudio stream in 20 ms blocks, or say what to do."""
    try:
        stream = factory(
            samplerate=rate,
            channels=1,
            dtype="int16",
            blocksize=int(rate * FRAME_SECONDS),
            device=device,
            callback=callback,
        )
        stream.start()
    except Exception as exc:
        raise AudioDeviceError(
            f"cannot open the {what} {device!r}: {exc}; "
            "list devices with `airvoice talk --list-devices`"
        ) from exc
    return stream


def _stop_stream(stream: Any) -> None:
    """Stop and close a stream opened by :func:`_start_stream` (None is fine)."""
    if stream is not None:
        stream.stop()
        stream.close()


class SoundDeviceMicrophone:
    """The default (or a chosen) microphone, captured at 16 kHz in 20 ms blocks."""

    def __init__(self, device: str | int | None = None) -> None:
        self.device = _device(device)
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stream: Any = None
        self.overflows = 0

    def _on_audio(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback (its own thread): hand the block to the event loop."""
        if status:
            self.overflows += 1
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._offer, bytes(indata))

    def _offer(self, block: bytes) -> None:
        if self._queue.full():  # the network is slower than the mic: drop the oldest
            self._queue.get_nowait()
        self._queue.put_nowait(block)

    async def frames(self) -> AsyncIterator[bytes]:
        sd = _sounddevice()
        self._loop = asyncio.get_running_loop()
        self._stream = _start_stream(
            sd.RawInputStream, "microphone", self.device, INPUT_SAMPLE_RATE, self._on_audio
        )
        while True:
            yield await self._queue.get()

    def close(self) -> None:
        self._stream = _stop_stream(self._stream)


class SoundDevicePlayer:
    """The default (or a chosen) speaker, fed from the jitter buffer by PortAudio's callback."""

    def __init__(self, device: str | int | None = None) -> None:
        self.device = _device(device)
        self.buffer: JitterBuffer | None = None
        self._stream: Any = None

    def _fill(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's callback: exactly ``frames`` samples, silence when nothing is queued."""
        assert self.buffer is not None
        outdata[:] = self.buffer.pull(frames * 2)

    async def start(self, buffer: JitterBuffer) -> None:
        sd = _sounddevice()
        self.buffer = buffer
        self._stream = _start_stream(
            sd.RawOutputStream, "speaker", self.device, OUTPUT_SAMPLE_RATE, self._fill
        )

    async def stop(self) -> None:
        self._stream = _stop_stream(self._stream)


def check_devices(input_device: str | int | None, output_device: str | int | None) -> None:
    """Check, before any connection, that the microphone and the speaker can be opened as the
    client will open them; the error says which package or which device is missing."""
    sd = _sounddevice()
    for what, kind, device, rate, option in (
        ("microphone", "input", _device(input_device), INPUT_SAMPLE_RATE, "--input-device"),
        ("speaker", "output", _device(output_device), OUTPUT_SAMPLE_RATE, "--output-device"),
    ):
        try:
            name = sd.query_devices(device, kind)["name"]
        except (ValueError, sd.PortAudioError) as exc:
            if device is None:
                raise AudioDeviceError(
                    f"no {what}: this machine has no default {kind} device ({exc}); connect one, "
                    f"or choose one with {option} (`airvoice talk --list-devices` lists them)"
                ) from None
            raise AudioDeviceError(
                f"no {what} {device!r}: {exc}; `airvoice talk --list-devices` lists the devices"
            ) from None
        check = sd.check_input_settings if kind == "input" else sd.check_output_settings
        try:
            check(device=device, channels=1, dtype="int16", samplerate=rate)
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(
                f"the {what} {name!r} cannot do {rate // 1000} kHz mono 16-bit ({exc}); choose "
                f"another with {option} (`airvoice talk --list-devices` lists them)"
            ) from None
