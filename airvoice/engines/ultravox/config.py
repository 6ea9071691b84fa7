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

from airvoice.errors import ModelFilesMissingError

SAMPLE_RATE = 16_000
"""Ultravox hears 16 kHz mono audio."""

WHISPER_WINDOW_SECONDS = 30
"""The Whisper encoder sees at most 30 s at once; longer audio is split into windows."""

ENCODER_SAMPLES_PER_FRAME = 320
"""One encoder frame per 320 samples: the mel hop is 160 and the encoder's conv halves it."""


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

    def audio_tokens(self, num_samples: int) -> int:
        """How many audio embeddings (LLM positions) a window of ``num_samples`` becomes."""
        frames = round(num_samples / ENCODER_SAMPLES_PER_FRAME + 1e-4)
        return -(-frames // self.stack_factor)


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
