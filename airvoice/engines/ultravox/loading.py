"""Load an Ultravox checkpoint from local files only: never a network call, never remote code.

An Ultravox hub repo holds the audio tower and projector (``model.safetensors``), the tokenizer
and the audio preprocessor settings; its ``text_model_id`` names the language model's repo, and
``audio_model_id`` the Whisper repo when the audio tower is not in the Ultravox checkpoint.
Repos are given as local directories or as repo ids found in the local Hugging Face cache.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from safetensors import safe_open

from airvoice.engines.ultravox.config import UltravoxConfig, read_json
from airvoice.engines.ultravox.modeling import UltravoxModel
from airvoice.errors import CheckpointMismatchError, ModelFilesMissingError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"

# Keys a Whisper checkpoint (named by audio_model_id) carries that the encoder does not use.
_UNUSED_WHISPER_PREFIXES = ("model.decoder.", "proj_out.")


@dataclass(frozen=True)
class UltravoxFiles:
    """Where the three parts of an Ultravox model live on disk."""

    ultravox_dir: Path
    text_model_dir: Path
    audio_model_dir: Path | None = None


def resolve_repo(
    ref: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None
) -> Path:
    """A local directory for ``ref``: the directory itself, or the repo's snapshot in the HF cache.

    The cache is read with ``local_files_only``: a repo that is not cached is an error that names
    the command to fetch it, not a download.
    """
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    repo_id = str(ref)
    if path.is_absolute() or repo_id.count("/") != 1:
        raise ModelFilesMissingError(["the model directory " + repo_id], None)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=repo_id, cache_dir=cache_dir, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError) as exc:
        raise ModelFilesMissingError(
            ["the whole repository (not in the local cache)"], repo_id
        ) from exc


def locate_files(
    ultravox: str | os.PathLike[str],
    text_model: str | os.PathLike[str] | None = None,
    audio_model: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> UltravoxFiles:
    """Find the Ultravox repo and the repos its config names, overriding them where given."""
    ultravox_dir = resolve_repo(ultravox, cache_dir)
    raw = read_json(ultravox_dir / "config.json", repo=str(ultravox))
    text_ref = text_model or raw.get("text_model_id")
    if text_ref is None and "text_config" not in raw:
        raise CheckpointMismatchError(
            f"{ultravox_dir / 'config.json'} names no text_model_id and embeds no text_config; "
            "pass the language model's directory explicitly"
        )
    text_dir = resolve_repo(text_ref, cache_dir) if text_ref is not None else ultravox_dir
    audio_ref = audio_model or (raw.get("audio_model_id") if "audio_config" not in raw else None)
    audio_dir = resolve_repo(audio_ref, cache_dir) if audio_ref is not None else None
    return UltravoxFiles(ultravox_dir, text_dir, audio_dir)


def read_config(files: UltravoxFiles) -> UltravoxConfig:
    """The full configuration, with the text (and audio) configs read from their repos."""
    raw = read_json(files.ultravox_dir / "config.json", repo=str(files.ultravox_dir))
    text_raw = (
        read_json(files.text_model_dir / "config.json", repo=raw.get("text_model_id"))
        if files.text_model_dir != files.ultravox_dir
        else None
    )
    audio_raw = (
        read_json(files.audio_model_dir / "config.json", repo=raw.get("audio_model_id"))
        if files.audio_model_dir is not None
        else None
    )
    return UltravoxConfig.from_json_dict(raw, text_config=text_raw, audio_config=audio_raw)


def weight_files(directory: Path, repo: str | None = None) -> list[Path]:
    """The safetensors files of a repo: one ``model.safetensors`` or the shards of its index."""
    index = directory / WEIGHTS_INDEX
    if index.is_file():
        with index.open(encoding="utf-8") as f:
            names = sorted(set(json.load(f)["weight_map"].values()))
    elif (directory / WEIGHTS_FILE).is_file():
        names = [WEIGHTS_FILE]
    else:
        raise ModelFilesMissingError([WEIGHTS_FILE], repo or str(directory))
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise ModelFilesMissingError(missing, repo or str(directory))
    return [directory / n for n in names]


def weight_sources(
    files: UltravoxFiles, config: UltravoxConfig
) -> list[tuple[Path, str | None, str]]:
    """(directory, repo id, role) in load order; later sources override earlier ones."""
    sources: list[tuple[Path, str | None, str]] = []
    if files.text_model_dir != files.ultravox_dir:
        sources.append((files.text_model_dir, config.text_model_id, "text"))
    if files.audio_model_dir is not None:
        sources.append((files.audio_model_dir, config.audio_model_id, "audio"))
    sources.append((files.ultravox_dir, None, "ultravox"))
    return sources


def _target_name(name: str, role: str) -> str | None:
    """The parameter name in ``UltravoxModel`` of a checkpoint key, or None to ignore it."""
    if role == "text":
        return "language_model." + name
    if role == "audio":
        if name.startswith(_UNUSED_WHISPER_PREFIXES):
            return None
        if name.startswith("model.encoder."):
            return "audio_tower." + name.removeprefix("model.encoder.")
        if name.startswith("encoder."):
            return "audio_tower." + name.removeprefix("encoder.")
        return "audio_tower." + name
    return name


def load_weights(model: UltravoxModel, files: UltravoxFiles) -> None:
    """Copy every checkpoint tensor into ``model``; fail loudly on missing or unexpected keys."""
    params = dict(model.named_parameters())
    params.update(dict(model.named_buffers()))
    tied = bool(getattr(model.config.text_config, "tie_word_embeddings", False))
    required = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    if tied:
        required.discard("language_model.lm_head.weight")
    loaded: set[str] = set()
    unexpected: list[str] = []
    for directory, repo, role in weight_sources(files, model.config):
        for path in weight_files(directory, repo):
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for key in f.keys():  # noqa: SIM118 (safe_open is not a dict)
                    name = _target_name(key, role)
                    if name is None or name.endswith("rotary_emb.inv_freq"):
                        continue
                    target = params.get(name)
                    if target is None:
                        unexpected.append(f"{key} (in {path.name} of {repo or directory})")
                        continue
                    tensor = f.get_tensor(key)
                    if tuple(tensor.shape) != tuple(target.shape):
                        raise CheckpointMismatchError(
                            f"{key} in {path} has shape {tuple(tensor.shape)}, the model expects "
                            f"{tuple(target.shape)}: the checkpoint does not fit its config.json"
                        )
                    with torch.no_grad():
                        target.copy_(tensor)
                    loaded.add(name)
    missing = sorted(required - loaded)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing tensors: {', '.join(missing[:10])}")
        if unexpected:
            parts.append(f"unexpected tensors: {', '.join(unexpected[:10])}")
        raise CheckpointMismatchError(
            "the checkpoint does not match the Ultravox model ("
            + "; ".join(parts)
            + "). Re-fetch the model with `airvoice models prefetch`, or check that the "
            "text and audio model repos are the ones config.json names."
        )
    if tied:
        model.language_model.tie_weights()


def check_files(files: UltravoxFiles) -> UltravoxConfig:
    """Check, before anything large is allocated, that every file to load is on disk."""
    config = read_config(files)
    for directory, repo, _ in weight_sources(files, config):
        weight_files(directory, repo)
    if not any(
        (d / "tokenizer.json").is_file() for d in (files.ultravox_dir, files.text_model_dir)
    ):
        raise ModelFilesMissingError(["tokenizer.json"], config.text_model_id)
    return config


def build_model(
    config: UltravoxConfig, device: torch.device, dtype: torch.dtype, *, init: bool = False
) -> UltravoxModel:
    """An ``UltravoxModel`` on ``device`` in ``dtype``; weights uninitialized unless ``init``."""
    from transformers.initialization import no_init_weights

    config.text_config.dtype = dtype
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            if init:
                model = UltravoxModel(config)
            else:
                with no_init_weights():
                    model = UltravoxModel(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval().requires_grad_(False)


def load_model(
    files: UltravoxFiles, device: torch.device, dtype: torch.dtype
) -> tuple[UltravoxModel, UltravoxConfig]:
    """Build the model from its configs and load every weight from the local files."""
    config = check_files(files)
    if config.ignored_keys:
        log.warning(
            "config.json of %s has keys this implementation ignores: %s",
            files.ultravox_dir.name,
            ", ".join(config.ignored_keys),
        )
    model = build_model(config, device, dtype)
    load_weights(model, files)
    log.info("loaded Ultravox from %s on %s (%s)", files.ultravox_dir, device, dtype)
    return model, config


def load_tokenizer(files: UltravoxFiles) -> transformers.PreTrainedTokenizerBase:
    """The tokenizer of the Ultravox repo (or of its language model), from local files only."""
    for directory in (files.ultravox_dir, files.text_model_dir):
        if (directory / "tokenizer.json").is_file():
            # transformers 5.x ignores clean_up_tokenization_spaces=True (the Llama 3 repos' value)
            # for byte-level BPE and warns at each load; False decodes the same, silently.
            return transformers.PreTrainedTokenizerFast.from_pretrained(
                str(directory), local_files_only=True, clean_up_tokenization_spaces=False
            )
    raise ModelFilesMissingError(["tokenizer.json"], str(files.ultravox_dir))


def load_feature_extractor(
    files: UltravoxFiles, config: UltravoxConfig
) -> transformers.WhisperFeatureExtractor:
    """The Whisper mel front end, with the repo's ``preprocessor_config.json`` settings if any."""
    settings: dict[str, object] = {"feature_size": config.audio_config.num_mel_bins}
    for directory in (files.ultravox_dir, files.audio_model_dir):
        path = directory / "preprocessor_config.json" if directory else None
        if path is not None and path.is_file():
            raw = read_json(path)
            raw = raw.get("feature_extractor", raw)
            for key in ("feature_size", "sampling_rate", "hop_length", "chunk_length", "n_fft"):
                if key in raw:
                    settings[key] = raw[key]
            break
    return transformers.WhisperFeatureExtractor(**settings)


def generation_defaults(files: UltravoxFiles) -> dict[str, object]:
    """The checkpoint's ``generation_config.json`` (end tokens, sampling), if present.

    The language model's file first, then the Ultravox repo's on top: the reference generates
    with the Ultravox repo's ``generation_config`` and vLLM reads the same file.
    """
    merged: dict[str, object] = {}
    for directory in (files.text_model_dir, files.ultravox_dir):
        path = directory / "generation_config.json"
        if path.is_file():
            merged.update(read_json(path))
    return merged
