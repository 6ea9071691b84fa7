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
from airvoice.engines.ultravox.processor import AudioFeatures


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
    """``[B, T, C] -> [B, ceil(T/factor), C*factor]``, zero-padding the last group.

    As the reference's ``StackAudioFrames``: the padding is added after the encoder, so a chunk
    padded to 30 s stacks the encoder's outputs at the padded positions, not zeros.
    """
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

    def forward(self, frames: torch.Tensor, token_counts: list[int] | None = None) -> torch.Tensor:
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

    def forward(self, frames: torch.Tensor, token_counts: list[int] | None = None) -> torch.Tensor:
        """Each chunk's tokens attend only to its real tokens (``token_counts``), as vLLM's
        ``UltravoxTransformerProjector`` segments them (the padding's outputs are dropped)."""
        x = self.linear_in(self.ln_pre(stack_frames(frames, self.stack_factor)))
        x = x + self.embed_positions.weight[: x.shape[1]]
        mask = None
        if token_counts is not None:
            counts = torch.tensor(token_counts, device=x.device)
            keep = torch.arange(x.shape[1], device=x.device)[None, :] < counts[:, None]
            mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(
                ~keep, torch.finfo(x.dtype).min
            )[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
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

    def encode(self, mel: torch.Tensor, chunk_frames: list[int]) -> torch.Tensor:
        """Encode mel chunks ``[B, n_mels, T<=3000]`` to encoder frames ``[B, T/2, d_model]``.

        As the reference's ``ModifiedWhisperEncoder.forward`` (fixie-ai/ultravox
        ``ultravox/model/ultravox_model.py``): chunks shorter than 30 s use the first ``T/2``
        position embeddings; each chunk's keys past its real length (``chunk_frames``, in mel
        frames) are masked; with ``audio_latency_block_size`` the attention is block-causal.
        """
        tower = self.audio_tower
        x = F.gelu(tower.conv1(mel))
        x = F.gelu(tower.conv2(x)).permute(0, 2, 1)
        if x.shape[1] > tower.embed_positions.num_embeddings:
            raise ValueError(
                f"a chunk of {mel.shape[-1]} mel frames is longer than the encoder's 30 s; "
                "cut the audio into 30 s chunks first (AudioProcessor.features does)"
            )
        x = x + tower.embed_positions.weight[: x.shape[1]]
        mask = self.encoder_mask(chunk_frames, x.shape[1], x.dtype, x.device)
        for layer in tower.layers:
            x = layer(x, mask)
        return tower.layer_norm(x)

    def encoder_mask(
        self, chunk_frames: list[int], length: int, dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        """The encoder's additive attention mask, ``[B, 1, 1 or T, T]``.

        Keys past a chunk's real length get ``finfo.min`` (the reference's extended attention
        mask from ``audio_len``); with a latency block size, keys in later blocks do too.
        The padding's queries still see the real keys, as in the reference; vLLM's
        ``UltravoxWhisperEncoder`` confines them to the padding instead, which changes only the
        last token of a padded chunk whose real encoder frames are not a multiple of 8.
        """
        lengths = torch.tensor(chunk_frames, device=device)
        valid = (lengths - 1) // 2 + 1  # Whisper's _get_feat_extract_output_lengths
        keep = torch.arange(length, device=device)[None, :] < valid[:, None]
        keep = keep[:, None, None, :]
        block = self.config.audio_latency_block_size
        if block:
            index = torch.arange(length, device=device) // block
            keep = keep & (index[None, :] <= index[:, None])[None, None]
        return torch.zeros(keep.shape, dtype=dtype, device=device).masked_fill(
            ~keep, torch.finfo(dtype).min
        )

    def embed_audio(self, features: AudioFeatures) -> torch.Tensor:
        """Audio embeddings ``[features.num_tokens, hidden]`` of one turn's mel chunks."""
        mel = features.mel.to(
            self.audio_tower.conv1.weight.device, self.audio_tower.conv1.weight.dtype
        )
        frames = self.encode(mel, features.chunk_frames)
        projected = self.multi_modal_projector(frames, features.token_counts)
        rows = [projected[i, :count] for i, count in enumerate(features.token_counts)]
        return torch.cat(rows, dim=0)

    def embed_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        """The LLM's input embeddings of ``token_ids``."""
        return self.language_model.get_input_embeddings()(token_ids)
