"""vLLM's Ultravox with our own input processor: no hub code is ever run.

vLLM's ``UltravoxModel`` asks the hub repo's processor (``ultravox_processing.py``, remote
code) to turn audio into mel chunks and token counts. This subclass registers our processor
instead, built on airvoice's shared audio processing, so the placeholder expansion is the same
as our torch engine's (and the reference's). Imported only inside vLLM (see ``vllm_plugin``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, WhisperFeatureExtractor
from vllm.model_executor.models.ultravox import (
    UltravoxDummyInputsBuilder,
    UltravoxModel,
    UltravoxMultiModalProcessor,
    UltravoxProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from airvoice.engines.ultravox.chat_template import AUDIO_PLACEHOLDER
from airvoice.engines.ultravox.processor import AudioProcessor


@dataclass
class _ProcessorView:
    """What vLLM's Ultravox code reads from "the HF processor": the placeholder text, the token
    id it expands to, and the Whisper feature extractor."""

    audio_processor: WhisperFeatureExtractor
    audio_token_replacement: str
    audio_replacement_token_id: int


@functools.cache
def audio_processor_for(model_dir: str) -> AudioProcessor:
    """Our audio processor for the model directory vLLM was given (read once per process)."""
    from airvoice.engines.ultravox.loading import load_feature_extractor, locate_files, read_config

    files = locate_files(Path(model_dir))
    return AudioProcessor(load_feature_extractor(files, read_config(files)), read_config(files))


class AirvoiceUltravoxProcessingInfo(UltravoxProcessingInfo):
    """vLLM's Ultravox processing info, with our processor in place of the hub's."""

    def get_hf_processor(self, **kwargs: object) -> Any:
        config = self.ctx.model_config.hf_config
        processor = audio_processor_for(str(self.ctx.model_config.model))
        return _ProcessorView(
            processor.feature_extractor, AUDIO_PLACEHOLDER, int(config.audio_token_index)
        )


class AirvoiceUltravoxMultiModalProcessor(UltravoxMultiModalProcessor):
    """Audio items to mel chunks and per-chunk token counts, by airvoice's shared processing."""

    def _call_hf_processor(
        self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]
    ) -> BatchFeature:
        audios = hf_data.get("audios", hf_data.get("audio")) or []
        processor = audio_processor_for(str(self.info.ctx.model_config.model))
        chunks: list[torch.Tensor] = []
        frames: list[int] = []
        token_counts: list[int] = []
        per_audio: list[int] = []
        for audio in audios:  # type: ignore[union-attr]
            features = processor.features(np.asarray(audio, dtype=np.float32))
            chunks.extend(features.mel)
            frames.extend(features.chunk_frames)
            token_counts.extend(features.token_counts)
            per_audio.append(len(features.token_counts))
        if not chunks:
            return BatchFeature({})
        width = max(c.shape[-1] for c in chunks)
        values = torch.stack(
            [torch.nn.functional.pad(c.float(), (0, width - c.shape[-1])) for c in chunks]
        )
        return BatchFeature(
            {
                "audio_values": values,
                "audio_lens": torch.tensor(frames),
                "audio_token_len": torch.tensor(token_counts),
                "audio_num_chunks": torch.tensor(per_audio),
            }
        )


@MULTIMODAL_REGISTRY.register_processor(
    AirvoiceUltravoxMultiModalProcessor,
    info=AirvoiceUltravoxProcessingInfo,
    dummy_inputs=UltravoxDummyInputsBuilder,
)
class AirvoiceUltravoxModel(UltravoxModel):
    """vLLM's Ultravox model, unchanged, with airvoice's input processor."""
