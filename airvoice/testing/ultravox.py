"""A tiny random Ultravox in the exact hub layout, for tests and benchmarks.

Writes an Ultravox repo (``config.json`` with the hub's key names, ``model.safetensors`` with
``audio_tower.*`` and ``multi_modal_projector.*``, tokenizer and preprocessor files) and a
separate text-model repo named by ``text_model_id`` (a Llama checkpoint, sharded like the hub's),
and optionally an audio-model repo named by ``audio_model_id`` (a Whisper checkpoint).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from airvoice.engines.ultravox.config import UltravoxConfig
from airvoice.engines.ultravox.loading import build_model
from airvoice.testing.tokenizer import build_llama3_tokenizer

TEXT_MODEL_ID = "meta-llama/Llama-3.2-1B-Instruct"
AUDIO_MODEL_ID = "openai/whisper-large-v3-turbo"
ULTRAVOX_ID = "fixie-ai/ultravox-v0_5-llama-3_2-1b"

SIZES: dict[str, dict[str, dict[str, int]]] = {
    # A few MB: loads and runs in well under a second on a laptop CPU.
    "tiny": {
        "audio": {
            "d_model": 32,
            "encoder_layers": 2,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
        },
        "text": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
        },
        "projector": {"hidden_size": 128},
    },
    # Large enough that compute shows on a 2-core CPU: for benchmarks.
    "bench": {
        "audio": {
            "d_model": 128,
            "encoder_layers": 2,
            "encoder_attention_heads": 4,
            "encoder_ffn_dim": 256,
        },
        "text": {
            "hidden_size": 512,
            "intermediate_size": 1536,
            "num_hidden_layers": 8,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
        },
        "projector": {"hidden_size": 1024},
    },
}


@dataclass(frozen=True)
class TinyUltravox:
    """Where a built model's repos are."""

    ultravox_dir: Path
    text_model_dir: Path
    audio_model_dir: Path | None


def _whisper_config(size: str, head_size: int | None) -> dict[str, object]:
    audio = dict(SIZES[size]["audio"])
    if head_size is not None:
        audio["encoder_attention_heads"] = max(1, audio["d_model"] // head_size)
    return {
        "model_type": "whisper",
        "_name_or_path": AUDIO_MODEL_ID,
        "architectures": ["WhisperForConditionalGeneration"],
        "num_mel_bins": 128,
        "max_source_positions": 1500,
        "decoder_layers": 1,
        "decoder_attention_heads": 2,
        "decoder_ffn_dim": 64,
        "vocab_size": 64,
        "max_target_positions": 32,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "decoder_start_token_id": 1,
        "begin_suppress_tokens": None,
        "activation_function": "gelu",
        "scale_embedding": False,
        **audio,
    }


def _llama_config(
    size: str, vocab_size: int, tied: bool, head_size: int | None
) -> dict[str, object]:
    text = dict(SIZES[size]["text"])
    if head_size is not None:
        heads = max(1, text["hidden_size"] // head_size)
        text["num_attention_heads"] = heads
        text["num_key_value_heads"] = max(1, heads // 2)
        text["head_dim"] = head_size
    return {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": vocab_size,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": tied,
        "bos_token_id": 0,
        "eos_token_id": [1, 4, 5],
        "torch_dtype": "bfloat16",
        **text,
    }


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _save_sharded(tensors: dict[str, torch.Tensor], directory: Path, shards: int) -> None:
    names = sorted(tensors)
    if shards <= 1:
        save_file({n: tensors[n].contiguous() for n in names}, str(directory / "model.safetensors"))
        return
    weight_map: dict[str, str] = {}
    per = -(-len(names) // shards)
    for index in range(shards):
        chunk = names[index * per : (index + 1) * per]
        fname = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n].contiguous() for n in chunk}, str(directory / fname))
        weight_map.update(dict.fromkeys(chunk, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    _write_json(
        directory / "model.safetensors.index.json",
        {"metadata": {"total_size": total}, "weight_map": weight_map},
    )


def build_tiny_ultravox(
    root: Path,
    *,
    size: str = "tiny",
    seed: int = 0,
    embed_audio_config: bool = True,
    text_shards: int = 2,
    tied_embeddings: bool = True,
    head_size: int | None = None,
    strong_audio: bool = False,
    config_extra: dict[str, object] | None = None,
) -> TinyUltravox:
    """Write a random Ultravox in hub layout under ``root``; returns the repo directories.

    With ``embed_audio_config=False`` the audio tower lives in a separate Whisper repo named by
    ``audio_model_id`` (full Whisper keys, decoder included), as in older Ultravox releases;
    with it embedded, ``audio_model_id`` is null, as in the v0.5 repos.
    ``head_size`` sets the attention head size of both towers (other engines refuse 16).
    ``strong_audio`` draws both towers' weights with std 0.2 instead of 0.02, so that the audio
    moves the logits measurably (with 0.02 the LLM's attention is near uniform and its values
    tiny: two clips change the last logits by about 1e-3).
    ``config_extra`` adds or overrides keys of the Ultravox ``config.json``.
    """
    root = Path(root)
    ultravox_dir = root / "ultravox"
    text_dir = root / "text-model"
    audio_dir = root / "audio-model" if not embed_audio_config else None
    for d in (ultravox_dir, text_dir, audio_dir):
        if d is not None:
            d.mkdir(parents=True, exist_ok=True)

    vocab_size, audio_token_index = build_llama3_tokenizer(ultravox_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(ultravox_dir / name, text_dir / name)

    audio_cfg = _whisper_config(size, head_size)
    text_cfg = _llama_config(size, vocab_size, tied_embeddings, head_size)
    if strong_audio:
        audio_cfg["init_std"] = 0.2
        text_cfg["initializer_range"] = 0.2
    ultravox_cfg: dict[str, object] = {
        "_name_or_path": ULTRAVOX_ID,
        "architectures": ["UltravoxModel"],
        "auto_map": {
            "AutoConfig": "ultravox_config.UltravoxConfig",
            "AutoModel": "ultravox_model.UltravoxModel",
        },
        "model_type": "ultravox",
        "audio_model_id": None if embed_audio_config else AUDIO_MODEL_ID,
        "text_model_id": TEXT_MODEL_ID,
        "audio_token_index": audio_token_index,
        "hidden_size": SIZES[size]["projector"]["hidden_size"],
        "ignore_index": -100,
        "norm_init": 0.4,
        "projector_act": "swiglu",
        "projector_ln_mid": True,
        "stack_factor": 8,
        "audio_model_lora_config": {
            "r": 0,
            "lora_alpha": 8,
            "target_modules": ["k_proj", "q_proj"],
        },
        "text_model_lora_config": {"r": 0, "lora_alpha": 8, "target_modules": ["k_proj", "q_proj"]},
        "torch_dtype": "bfloat16",
        "transformers_version": "4.47.0",
        "vocab_size": vocab_size,
    }
    if embed_audio_config:
        ultravox_cfg["audio_config"] = audio_cfg
    ultravox_cfg.update(config_extra or {})

    config = UltravoxConfig.from_json_dict(
        ultravox_cfg, text_config=text_cfg, audio_config=audio_cfg
    )
    torch.manual_seed(seed)
    model = build_model(config, torch.device("cpu"), torch.float32, init=True)
    state = model.state_dict()

    ultravox_tensors = {k: v for k, v in state.items() if k.startswith("multi_modal_projector.")}
    audio_tensors = {k: v for k, v in state.items() if k.startswith("audio_tower.")}
    text_tensors = {
        k.removeprefix("language_model."): v
        for k, v in state.items()
        if k.startswith("language_model.")
    }
    if tied_embeddings:
        text_tensors.pop("lm_head.weight", None)
    if embed_audio_config:
        ultravox_tensors.update(audio_tensors)
    else:
        assert audio_dir is not None
        whisper = {
            "model.encoder." + k.removeprefix("audio_tower."): v for k, v in audio_tensors.items()
        }
        d = int(audio_cfg["d_model"])  # the unused decoder parts a Whisper checkpoint carries
        whisper["model.decoder.layer_norm.weight"] = torch.ones(d)
        whisper["proj_out.weight"] = torch.zeros(int(audio_cfg["vocab_size"]), d)
        save_file(
            {k: v.contiguous() for k, v in whisper.items()}, str(audio_dir / "model.safetensors")
        )
        _write_json(audio_dir / "config.json", audio_cfg)

    save_file(
        {k: v.contiguous() for k, v in ultravox_tensors.items()},
        str(ultravox_dir / "model.safetensors"),
    )
    _write_json(ultravox_dir / "config.json", ultravox_cfg)
    _write_json(
        ultravox_dir / "preprocessor_config.json",
        {
            "feature_extractor_type": "WhisperFeatureExtractor",
            "feature_size": 128,
            "sampling_rate": 16000,
            "hop_length": 160,
            "chunk_length": 30,
            "n_fft": 400,
            "padding_side": "right",
            "padding_value": 0.0,
            "processor_class": "UltravoxProcessor",
            "return_attention_mask": False,
        },
    )
    generation = {"bos_token_id": 0, "eos_token_id": [1, 4, 5], "temperature": 0.6, "top_p": 0.9}
    _write_json(ultravox_dir / "generation_config.json", generation)

    _save_sharded(text_tensors, text_dir, text_shards)
    _write_json(text_dir / "config.json", text_cfg)
    _write_json(text_dir / "generation_config.json", {**generation, "do_sample": True})
    return TinyUltravox(ultravox_dir, text_dir, audio_dir)


def install_in_hf_cache(source: Path, cache_dir: Path, repo_id: str, commit: str) -> Path:
    """Copy a repo directory into the Hugging Face cache layout; returns its snapshot folder."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copy(path, snapshot / path.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot
