"""The reference's input processing, written out independently for the tests to compare against.

Each step follows fixie-ai/ultravox (commit 648efe7): ``ultravox/model/ultravox_processing.py``
(``UltravoxProcessor.__call__``, ``_chunk_and_pad_audio``), ``ultravox/model/ultravox_model.py``
(``ModifiedWhisperEncoder.forward`` and ``init_latency_mask``, ``StackAudioFrames``,
``UltravoxProjector.forward``, ``_prepare_audio_embeds``) and
``ultravox/model/ultravox_pipeline.py`` (``UltravoxPipeline.preprocess``). The mel features come
from transformers' own ``WhisperFeatureExtractor``, called with the reference's arguments.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

CONTEXT_FRAMES = 3000  # the reference's audio_context_size (Whisper's 30 s)
ENCODER_DS_FACTOR = 2


def reference_features(feature_extractor, samples: np.ndarray, stack_factor: int = 8):
    """(audio_values [chunks, mels, T], audio_lens, audio_token_len) as the processor builds."""
    hop = feature_extractor.hop_length
    if len(samples) < 2 * hop:
        samples = np.pad(samples, (0, 2 * hop - len(samples)), mode="constant")
    x = feature_extractor(
        [samples],
        sampling_rate=16000,
        padding="longest",
        pad_to_multiple_of=hop,
        truncation=False,
        return_attention_mask=True,
    )
    values = torch.as_tensor(np.asarray(x.input_features))
    total = int(torch.as_tensor(np.asarray(x.attention_mask)).sum(-1)[0])
    chunks, lens = [], []
    for offset in range(0, total, CONTEXT_FRAMES):
        chunk = values[0, :, offset : offset + CONTEXT_FRAMES]
        if offset > 0 and chunk.shape[-1] < CONTEXT_FRAMES:
            chunk = F.pad(chunk, (0, CONTEXT_FRAMES - chunk.shape[-1]))
        chunks.append(chunk)
        lens.append(min(total - offset, CONTEXT_FRAMES))
    lens_t = torch.tensor(lens, dtype=torch.int64)
    token_len = torch.ceil(lens_t / (ENCODER_DS_FACTOR * stack_factor)).to(torch.int)
    return torch.stack(chunks), lens_t, token_len


def reference_encoder(tower, values, audio_len, latency_block: int | None = None):
    """``ModifiedWhisperEncoder.forward``: key-padding mask from ``audio_len``, block mask."""
    h = F.gelu(tower.conv1(values))
    h = F.gelu(tower.conv2(h)).permute(0, 2, 1)
    h = h + tower.embed_positions.weight[: h.size(-2)]
    feature_len = (audio_len - 1) // 2 + 1
    valid = torch.arange(h.shape[1])[None, :].lt(feature_len.view(-1, 1))
    dtype = h.dtype
    mask = (1.0 - valid[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    if latency_block:
        blocks = CONTEXT_FRAMES // latency_block
        stream = (
            torch.tril(torch.ones(blocks, blocks))
            .repeat_interleave(latency_block, dim=0)
            .repeat_interleave(latency_block, dim=1)
        )
        stream = ((1.0 - stream) * torch.finfo(dtype).min)[None, None]
        seq = h.size(-2)
        mask = torch.minimum(stream[:, :, :seq, :seq], mask)
    for layer in tower.layers:
        h = layer(h, mask)
    return tower.layer_norm(h)


def reference_projector(projector, frames, stack_factor: int = 8):
    """``StackAudioFrames`` then ``UltravoxProjector.forward`` (v0.5: norm after linear_1)."""
    b, t, c = frames.shape
    t_pad = (t + stack_factor - 1) // stack_factor * stack_factor
    x = F.pad(frames, (0, 0, 0, t_pad - t)).view(b, t_pad // stack_factor, c * stack_factor)
    x = projector.ln_pre(x)
    x = projector.linear_1(x)
    value, gate = x.chunk(2, dim=-1)
    x = projector.ln_mid(F.silu(gate) * value)
    return projector.ln_post(projector.linear_2(x))


def reference_audio_embeddings(model, feature_extractor, samples, latency_block=None):
    """The rows ``_prepare_audio_embeds`` writes into the prompt for one audio."""
    stack = model.config.stack_factor
    values, lens, token_len = reference_features(feature_extractor, samples, stack)
    frames = reference_encoder(model.audio_tower, values, lens, latency_block)
    projected = reference_projector(model.multi_modal_projector, frames, stack)
    return torch.cat([projected[i, : int(n)] for i, n in enumerate(token_len)])


def reference_prompt(tokenizer, turns, date_string: str, audio_token_counts):
    """input_ids as the pipeline and processor build them; audio positions hold ``None``."""
    text = tokenizer.apply_chat_template(
        turns, add_generation_prompt=True, tokenize=False, date_string=date_string
    )
    parts = [tokenizer.encode(p, add_special_tokens=False) for p in text.split("<|audio|>")]
    assert len(parts) == len(audio_token_counts) + 1
    ids: list[int | None] = list(parts[0])
    for count, part in zip(audio_token_counts, parts[1:], strict=True):
        ids += [None] * count
        ids += part
    return text, ids


def reference_logits(model, tokenizer, turns, date_string, audios, feature_extractor):
    """The last position's logits of the reference's forward over one prompt."""
    embeddings = [reference_audio_embeddings(model, feature_extractor, a) for a in audios]
    _, ids = reference_prompt(tokenizer, turns, date_string, [len(e) for e in embeddings])
    eos = tokenizer.eos_token_id  # the reference's audio_token_replacement
    input_ids = torch.tensor([eos if i is None else i for i in ids])
    embeds = model.language_model.get_input_embeddings()(input_ids)
    starts = [k for k, i in enumerate(ids) if i is None and (k == 0 or ids[k - 1] is not None)]
    for start, rows in zip(starts, embeddings, strict=True):
        embeds[start : start + len(rows)] = rows
    return model.language_model(inputs_embeds=embeds[None]).logits[0, -1]
