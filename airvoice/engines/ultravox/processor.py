"""Audio in: validation, resampling to 16 kHz, Whisper windows and their audio token counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import transformers

from airvoice.engines.ultravox.config import SAMPLE_RATE, WHISPER_WINDOW_SECONDS, UltravoxConfig
from airvoice.errors import AudioInputError


def prepare_audio(
    audio: np.ndarray, sample_rate: int = SAMPLE_RATE, max_seconds: float = 120.0
) -> np.ndarray:
    """Mono float32 at 16 kHz in [-1, 1] from float or int16 samples, or a clear error."""
    samples = np.asarray(audio)
    if samples.ndim == 2 and 1 in samples.shape:
        samples = samples.reshape(-1)
    if samples.ndim != 1:
        raise AudioInputError(
            f"expected mono audio (one channel), got an array of shape {samples.shape}; "
            "mix the channels down to one before sending"
        )
    if samples.size == 0:
        raise AudioInputError("the audio is empty: send at least one 20 ms frame of speech")
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    elif np.issubdtype(samples.dtype, np.floating):
        samples = samples.astype(np.float32, copy=False)
    else:
        raise AudioInputError(
            f"audio samples of type {samples.dtype} are not supported: send float32 in [-1, 1] "
            "or int16 PCM"
        )
    if not np.all(np.isfinite(samples)):
        raise AudioInputError(
            "the audio holds NaN or infinite samples: check the capture device or the decoder"
        )
    if sample_rate <= 0:
        raise AudioInputError(f"sample rate {sample_rate} Hz is not valid: 16000 is expected")
    seconds = samples.size / sample_rate
    if seconds > max_seconds:
        raise AudioInputError(
            f"the audio is {seconds:.1f} s long, more than the limit of {max_seconds:.0f} s; "
            "send shorter turns or raise the limit (max_audio_seconds)"
        )
    if sample_rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sample_rate, SAMPLE_RATE).astype(np.float32)
    return samples


@dataclass(frozen=True)
class AudioFeatures:
    """The mel windows of one user turn and how many LLM positions each becomes."""

    mel_windows: list[torch.Tensor]
    token_counts: list[int]

    @property
    def num_tokens(self) -> int:
        return sum(self.token_counts)


class AudioProcessor:
    """Turns 16 kHz samples into Whisper mel windows of at most 30 s each."""

    def __init__(
        self, feature_extractor: transformers.WhisperFeatureExtractor, config: UltravoxConfig
    ) -> None:
        self.feature_extractor = feature_extractor
        self.config = config
        self.window_samples = WHISPER_WINDOW_SECONDS * SAMPLE_RATE

    def token_count(self, num_samples: int) -> int:
        """Audio tokens for ``num_samples`` of 16 kHz audio, counting each 30 s window apart."""
        full, rest = divmod(num_samples, self.window_samples)
        count = full * self.config.audio_tokens(self.window_samples)
        return count + (self.config.audio_tokens(rest) if rest else 0)

    def features(self, samples: np.ndarray) -> AudioFeatures:
        """Mel windows (``[1, n_mels, frames]`` each) and token counts for prepared samples."""
        windows, counts = [], []
        for start in range(0, samples.size, self.window_samples):
            window = samples[start : start + self.window_samples]
            if self.config.audio_tokens(window.size) == 0:
                continue  # a tail shorter than one encoder frame carries nothing
            mel = self.feature_extractor(
                window,
                sampling_rate=SAMPLE_RATE,
                padding="longest",
                return_tensors="np",
            ).input_features
            windows.append(torch.from_numpy(np.ascontiguousarray(mel)))
            counts.append(self.config.audio_tokens(window.size))
        if not windows:
            raise AudioInputError(
                f"the audio is {samples.size / SAMPLE_RATE * 1000:.0f} ms long, too short to hear: "
                "send at least 20 ms"
            )
        return AudioFeatures(windows, counts)
