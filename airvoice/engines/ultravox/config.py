"""The Ultravox configuration, read from a hub repo's ``config.json``.

A hub Ultravox repo names its language model by ``text_model_id`` and, when it does not embed
``audio_config``, its audio encoder by ``audio_model_id``. Both are resolved to local
directories by the loader; nothing here touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transformers

from airvoice.errors import CheckpointMismatchError, ModelFilesMissingError

SAMPLE_RATE = 16_000
"""Ultravox hears 16 kHz mono audio."""

INERT_KEYS = frozenset(
    {
        # Bookkeeping of the hub and of training: they do not change what the model computes.
        "_name_or_path",
        "architectures",
        "auto_map",
        "model_type",
        "torch_dtype",
        "dtype",
        "transformers_version",
        "ignore_index",
        "norm_init",  # the RMSNorm weights' initial value; the checkpoint holds the real ones
        "vocab_size",
        "initializer_range",
        "llm_only_training",
        "audio_model_lora_config",  # merged into the weights before upload (merge_and_unload)
        "text_model_lora_config",
        "audio_token_index",  # the placeholder's id: we place embeddings, not ids
        "pad_token_id",
        "bos_token_id",
        "eos_token_id",
        "tie_word_embeddings",
        "use_cache",
    }
)
"""Keys of an Ultravox ``config.json`` that inference does not need (see fixie-ai/ultravox
``ultravox/model/ultravox_config.py``); any other unknown key is logged as ignored."""


@dataclass
class UltravoxConfig:
    """What an Ultravox checkpoint is made of, with the key names of the hub's ``config.json``."""

    audio_config: transformers.WhisperConfig
    text_config: transformers.PreTrainedConfig
    text_model_id: str | None = None
    audio_model_id: str | None = None
    audio_config_embedded: bool = True
    hidden_size: int = 4096
    stack_factor: int = 8
    projector_act: str = "swiglu"
    projector_ln_mid: bool = False
    num_projector_layers: int = 0
    norm_eps: float = 1e-6
    audio_latency_block_size: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json_dict(
        cls,
        data: dict[str, Any],
        text_config: dict[str, Any] | None = None,
        audio_config: dict[str, Any] | None = None,
    ) -> UltravoxConfig:
        """Build from a hub ``config.json``, plus the text/audio configs when not embedded."""
        data = dict(data)
        embedded_audio = data.pop("audio_config", None)
        audio_dict = embedded_audio if embedded_audio is not None else audio_config
        if audio_dict is None:
            raise ModelFilesMissingError(
                ["config.json (of the audio model)"], data.get("audio_model_id")
            )
        text_dict = data.pop("text_config", None) if text_config is None else text_config
        data.pop("text_config", None)
        if text_dict is None:
            raise ModelFilesMissingError(
                ["config.json (of the language model)"], data.get("text_model_id")
            )
        known = {
            "text_model_id",
            "audio_model_id",
            "hidden_size",
            "stack_factor",
            "projector_act",
            "projector_ln_mid",
            "num_projector_layers",
            "audio_latency_block_size",
        }
        kwargs = {k: data.pop(k) for k in list(data) if k in known}
        return cls(
            audio_config=_whisper_config(audio_dict),
            text_config=_text_config(text_dict),
            audio_config_embedded=embedded_audio is not None,
            extra=data,
            **kwargs,
        )

    @classmethod
    def from_directory(cls, directory: Path) -> UltravoxConfig:
        """Read ``config.json`` of a local Ultravox repo (text/audio configs are not resolved)."""
        return cls.from_json_dict(read_json(directory / "config.json", repo=str(directory)))

    def __post_init__(self) -> None:
        block = self.audio_latency_block_size
        # The reference builds its block mask over 2 * max_source_positions (3000) positions and
        # asserts that the block size divides them (ModifiedWhisperEncoder.init_latency_mask).
        context = 2 * int(self.audio_config.max_source_positions)
        if block and (block < 0 or context % block):  # 0 or None: no block mask
            raise CheckpointMismatchError(
                f"config.json sets audio_latency_block_size={block}, which does not divide the "
                f"encoder's {context} positions; the checkpoint's config is broken: use another "
                "checkpoint or fix that value"
            )

    @property
    def ignored_keys(self) -> list[str]:
        """Keys of ``config.json`` that this implementation does not use and does not know."""
        return sorted(k for k in self.extra if k not in INERT_KEYS)


def read_json(path: Path, repo: str | None = None) -> dict[str, Any]:
    """Read a JSON file, or say which file of which repo is missing."""
    if not path.is_file():
        raise ModelFilesMissingError([path.name], repo)
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _whisper_config(data: dict[str, Any]) -> transformers.WhisperConfig:
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    data.pop("model_type", None)
    return transformers.WhisperConfig(**data)


def _text_config(data: dict[str, Any]) -> transformers.PreTrainedConfig:
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    model_type = data.pop("model_type", "llama")
    return transformers.AutoConfig.for_model(model_type, **data)
