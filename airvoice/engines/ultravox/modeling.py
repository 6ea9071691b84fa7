"""The Ultravox network: Whisper encoder, a projector into the LLM's embedding space, and the LLM.

Parameter names match the hub checkpoints (``audio_tower.*``, ``multi_modal_projector.*``,
``language_model.*``), so a ``state_dict`` of this module loads a hub checkpoint as it is.
"""

from __future__ import annotations

import torch
import transformers
from torch import nn
from torch.nn import functional as F
from transformers.models.whisper.modeling_whisper import WhisperEncoder, WhisperEncoderLayer

from airvoice.engines.ultravox.config import UltravoxConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm as Ultravox's projector uses it (eps 1e-6, learned scale)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)


def stack_frames(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """``[B, T, C] -> [B, ceil(T/factor), C*factor]``, zero-padding the last group."""
    batch, length, channels = frames.shape
    padded = -(-length // factor) * factor
    frames = F.pad(frames, (0, 0, 0, padded - length))
    return frames.reshape(batch, padded // factor, channels * factor)


class SwiGLU(nn.Module):
    """``x * silu(gate)`` with the two halves of the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * F.silu(gate)


class FeedForwardProjector(nn.Module):
    """Stacked encoder frames -> LLM embeddings (Ultravox v0.4-v0.6 ``multi_modal_projector``)."""

    def __init__(self, config: UltravoxConfig) -> None:
        super().__init__()
        self.stack_factor = config.stack_factor
        dim_in = config.audio_config.d_model * config.stack_factor
        dim_mid = config.hidden_size
        self.ln_pre = RMSNorm(dim_in, config.norm_eps)
        self.linear_1 = nn.Linear(dim_in, dim_mid, bias=False)
        if config.projector_act == "swiglu":
            self.act: nn.Module = SwiGLU()
            dim_mid //= 2
        else:
            self.act = transformers.activations.get_activation(config.projector_act)
        dim_out = config.text_config.hidden_size
        self.linear_2 = nn.Linear(dim_mid, dim_out, bias=False)
        # v0.5 and later norm after the first linear, v0.4.1 and earlier after the second.
        if config.projector_ln_mid:
            self.ln_mid: nn.Module = RMSNorm(dim_mid, config.norm_eps)
            self.ln_post: nn.Module = nn.Identity()
        else:
            self.ln_mid = nn.Identity()
            self.ln_post = RMSNorm(dim_out, config.norm_eps)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.ln_pre(stack_frames(frames, self.stack_factor))
        x = self.ln_mid(self.act(self.linear_1(x)))
        return self.ln_post(self.linear_2(x))


class TransformerProjector(nn.Module):
    """The projector when ``num_projector_layers > 0``: Whisper layers between two linears."""

    def __init__(self, config: UltravoxConfig) -> None:
        super().__init__()
        audio = config.audio_config
        self.stack_factor = config.stack_factor
        dim_in = audio.d_model * config.stack_factor
        self.ln_pre = RMSNorm(dim_in, config.norm_eps)
        self.linear_in = nn.Linear(dim_in, audio.d_model)
        self.embed_positions = nn.Embedding(audio.max_source_positions, audio.d_model)
        self.layers = nn.ModuleList(
            WhisperEncoderLayer(audio) for _ in range(config.num_projector_layers)
        )
        self.ln_post = RMSNorm(audio.d_model, config.norm_eps)
        self.linear_out = nn.Linear(audio.d_model, config.text_config.hidden_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.linear_in(self.ln_pre(stack_frames(frames, self.stack_factor)))
        x = x + self.embed_positions.weight[: x.shape[1]]
        for layer in self.layers:
            x = layer(x, None)
        return self.linear_out(self.ln_post(x))


class UltravoxModel(nn.Module):
    """Whisper encoder + projector + causal LLM, with hub parameter names."""

    def __init__(self, config: UltravoxConfig) -> None:
        super().__init__()
        self.config = config
        self.audio_tower = WhisperEncoder(config.audio_config)
        if config.num_projector_layers > 0:
            self.multi_modal_projector: nn.Module = TransformerProjector(config)
        else:
            self.multi_modal_projector = FeedForwardProjector(config)
        self.language_model = transformers.AutoModelForCausalLM.from_config(config.text_config)

    def encode_window(self, mel: torch.Tensor) -> torch.Tensor:
        """Encode one Whisper window of mel features ``[1, n_mels, T<=3000]`` to encoder frames.

        Unlike transformers' ``WhisperEncoder.forward`` this takes windows shorter than 30 s,
        using the first ``T/2`` position embeddings, as Ultravox's modified encoder does.
        """
        tower = self.audio_tower
        x = F.gelu(tower.conv1(mel))
        x = F.gelu(tower.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > tower.embed_positions.num_embeddings:
            raise ValueError(
                f"a window of {mel.shape[-1]} mel frames is longer than the encoder's 30 s; "
                "split the audio into 30 s windows first"
            )
        x = x + tower.embed_positions.weight[: x.shape[1]]
        for layer in tower.layers:
            x = layer(x, None)
        return tower.layer_norm(x)

    def embed_audio(self, mel_windows: list[torch.Tensor], token_counts: list[int]) -> torch.Tensor:
        """Audio embeddings ``[sum(token_counts), hidden]`` for a list of mel windows."""
        parts = []
        for mel, count in zip(mel_windows, token_counts, strict=True):
            frames = self.encode_window(mel)
            parts.append(self.multi_modal_projector(frames)[0, :count])
        return torch.cat(parts, dim=0)

    def embed_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """The LLM's input embeddings of ``token_ids``."""
        return self.language_model.get_input_embeddings()(token_ids)
