"""Audio in: validation, resampling to 16 kHz, Whisper log-mel chunks and their audio token counts.

This follows the reference processor, fixie-ai/ultravox ``ultravox/model/ultravox_processing.py``
(``UltravoxProcessor.__call__`` and ``_chunk_and_pad_audio``), which vLLM's
``vllm/model_executor/models/ultravox.py`` calls as it is:

1. audio shorter than two hops (320 samples) is zero-padded to two hops;
2. ONE log-mel is computed over the whole audio by transformers' ``WhisperFeatureExtractor``
   (``padding="longest"``, ``pad_to_multiple_of=hop_length``, ``truncation=False``), so the
   loudness floor (max - 8) is taken over all of it, and its length in mel frames is the sum of
   the extractor's attention mask (``ceil(samples / 160)``);
3. the log-mel is cut into chunks of the encoder's context (3000 frames, 30 s); a continuation
   chunk shorter than that is zero-padded to 3000 frames, and each chunk keeps its real length
   (``audio_lens``), with which the encoder masks the padding;
4. each chunk becomes ``ceil(frames / (2 * stack_factor))`` audio tokens (16 for stack factor 8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import transformers

from airvoice.engines.ultravox.config import SAMPLE_RATE, UltravoxConfig
from airvoice.errors import AudioInputError

ENCODER_DOWNSAMPLING = 2
"""Whisper's second convolution has stride 2: two mel frames per encoder frame
(the reference's ``encoder_ds_factor``)."""


def audio_token_counts(
    num_samples: int,
    *,
    hop_length: int = 160,
    stack_factor: int = 8,
    context_frames: int = 3000,
) -> list[int]:
    """Audio tokens per encoder chunk for ``num_samples`` of 16 kHz audio, as the reference counts.

    ``context_frames`` is the encoder's context in mel frames (``2 * max_source_positions``).
    The sum is the number of placeholder positions one ``<|audio|>`` expands to.
    """
    return [
        math.ceil(frames / (ENCODER_DOWNSAMPLING * stack_factor))
        for frames in chunk_frames(
            num_samples, hop_length=hop_length, context_frames=context_frames
        )
    ]


def chunk_frames(
    num_samples: int, *, hop_length: int = 160, context_frames: int = 3000
) -> list[int]:
    """Mel frames that hold audio in each encoder chunk (the reference's ``audio_lens``)."""
    if num_samples <= 0:
        raise AudioInputError("the audio is empty: send at least one 20 ms frame of speech")
    padded = max(num_samples, 2 * hop_length)
    frames = math.ceil(padded / hop_length)
    return [min(frames - start, context_frames) for start in range(0, frames, context_frames)]


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
        if samples.size == 0:
            raise AudioInputError("the audio is empty after resampling to 16 kHz: send more")
    return samples


@dataclass(frozen=True)
class AudioFeatures:
    """One user turn's log-mel, cut into encoder chunks as the reference cuts it."""

    mel: torch.Tensor
    """``[chunks, n_mels, T]``: ``T`` is the whole length when there is one chunk, else 3000."""
    chunk_frames: list[int]
    """Mel frames holding audio in each chunk; the encoder masks the rest."""
    token_counts: list[int]
    """Audio tokens (LLM positions) each chunk becomes."""

    @property
    def num_tokens(self) -> int:
        return sum(self.token_counts)


class AudioProcessor:
    """16 kHz samples to Whisper log-mel chunks and audio token counts, as the reference does.

    Another backend (e.g. a vLLM processor) that only needs the placeholder expansion calls
    ``AudioProcessor(feature_extractor, stack_factor=8).token_counts(num_samples)`` and inserts
    ``sum(...)`` audio positions for each ``<|audio|>``.
    """

    def __init__(
        self,
        feature_extractor: transformers.WhisperFeatureExtractor,
        config: UltravoxConfig | None = None,
        *,
        stack_factor: int | None = None,
        encoder_positions: int | None = None,
    ) -> None:
        self.feature_extractor = feature_extractor
        if stack_factor is None:
            stack_factor = config.stack_factor if config is not None else 8
        if encoder_positions is None:
            encoder_positions = (
                config.audio_config.max_source_positions if config is not None else 1500
            )
        self.stack_factor = stack_factor
        self.hop_length = int(feature_extractor.hop_length)
        self.context_frames = encoder_positions * ENCODER_DOWNSAMPLING

    def chunk_frames(self, num_samples: int) -> list[int]:
        """Mel frames holding audio in each chunk of ``num_samples`` of 16 kHz audio."""
        return chunk_frames(
            num_samples, hop_length=self.hop_length, context_frames=self.context_frames
        )

    def token_counts(self, num_samples: int) -> list[int]:
        """Audio tokens per chunk for ``num_samples`` of 16 kHz audio (placeholder expansion)."""
        return audio_token_counts(
            num_samples,
            hop_length=self.hop_length,
            stack_factor=self.stack_factor,
            context_frames=self.context_frames,
        )

    def token_count(self, num_samples: int) -> int:
        """All audio tokens of ``num_samples`` of 16 kHz audio."""
        return sum(self.token_counts(num_samples))

    def features(self, samples: np.ndarray) -> AudioFeatures:
        """The chunked log-mel of prepared samples, with each chunk's length and token count."""
        if samples.size == 0:
            raise AudioInputError("the audio is empty: send at least one 20 ms frame of speech")
        hop = self.hop_length
        if samples.size < 2 * hop:  # the reference pads to two hops, the extractor's minimum
            samples = np.pad(samples, (0, 2 * hop - samples.size))
        out = self.feature_extractor(
            [samples],
            sampling_rate=SAMPLE_RATE,
            padding="longest",
            pad_to_multiple_of=hop,
            truncation=False,
            return_attention_mask=True,
            return_tensors="np",
        )
        mel = torch.from_numpy(np.ascontiguousarray(out.input_features[0]))
        total = int(out.attention_mask[0].sum())
        context = self.context_frames
        chunks, lengths = [], []
        for start in range(0, total, context):
            chunk = mel[:, start : start + context]
            if start > 0 and chunk.shape[-1] < context:
                chunk = torch.nn.functional.pad(chunk, (0, context - chunk.shape[-1]))
            chunks.append(chunk)
            lengths.append(min(total - start, context))
        counts = [math.ceil(n / (ENCODER_DOWNSAMPLING * self.stack_factor)) for n in lengths]
        return AudioFeatures(torch.stack(chunks), lengths, counts)
