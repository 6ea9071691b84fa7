"""Loading real hub layouts through the real loader: exact tensors, loud failures, offline."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from airvoice.engines.ultravox import locate_files
from airvoice.engines.ultravox.loading import load_model
from airvoice.errors import CheckpointMismatchError, ModelFilesMissingError
from airvoice.testing.ultravox import (
    AUDIO_MODEL_ID,
    TEXT_MODEL_ID,
    ULTRAVOX_ID,
    build_tiny_ultravox,
    install_in_hf_cache,
)

CPU = torch.device("cpu")


def _checkpoint_tensors(directory, prefix=""):
    tensors = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118
                tensors[prefix + key] = f.get_tensor(key)
    return tensors


def test_round_trip_every_tensor_bitwise_equal(tiny_model, no_network):
    files = locate_files(tiny_model.ultravox_dir, tiny_model.text_model_dir)
    model, config = load_model(files, CPU, torch.float32)
    saved = _checkpoint_tensors(tiny_model.ultravox_dir)
    saved.update(_checkpoint_tensors(tiny_model.text_model_dir, "language_model."))
    state = model.state_dict()
    assert config.text_config.tie_word_embeddings
    expected = set(state) - {"language_model.lm_head.weight"}
    assert set(saved) == expected  # no missing, no unexpected keys
    for name, tensor in saved.items():
        assert torch.equal(state[name], tensor), name
    # Tied embeddings: the head shares the embedding matrix.
    assert torch.equal(
        state["language_model.lm_head.weight"], saved["language_model.model.embed_tokens.weight"]
    )
    assert not no_network  # nothing tried the network


def test_config_reads_hub_key_names(tiny_model):
    files = locate_files(tiny_model.ultravox_dir, tiny_model.text_model_dir)
    _, config = load_model(files, CPU, torch.float32)
    raw = json.loads((tiny_model.ultravox_dir / "config.json").read_text())
    assert config.text_model_id == raw["text_model_id"] == TEXT_MODEL_ID
    assert config.stack_factor == 8 and config.projector_ln_mid is True
    assert config.audio_config.num_mel_bins == 128
    assert config.text_config.hidden_size == 64


def _copy(tiny_model, tmp_path):
    ultravox = tmp_path / "ultravox"
    text = tmp_path / "text-model"
    shutil.copytree(tiny_model.ultravox_dir, ultravox)
    shutil.copytree(tiny_model.text_model_dir, text)
    return ultravox, text


def test_missing_tensor_fails_loudly(tiny_model, tmp_path):
    ultravox, text = _copy(tiny_model, tmp_path)
    tensors = load_file(str(ultravox / "model.safetensors"))
    del tensors["multi_modal_projector.linear_2.weight"]
    save_file(tensors, str(ultravox / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match=r"missing tensors: .*linear_2\.weight"):
        load_model(locate_files(ultravox, text), CPU, torch.float32)


def test_misnamed_tensor_fails_loudly(tiny_model, tmp_path):
    ultravox, text = _copy(tiny_model, tmp_path)
    tensors = load_file(str(ultravox / "model.safetensors"))
    tensors["multi_modal_projector.linear_two.weight"] = tensors.pop(
        "multi_modal_projector.linear_2.weight"
    )
    save_file(tensors, str(ultravox / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as info:
        load_model(locate_files(ultravox, text), CPU, torch.float32)
    assert "linear_2.weight" in str(info.value)
    assert "unexpected tensors: multi_modal_projector.linear_two.weight" in str(info.value)


def test_wrong_shape_fails_loudly(tiny_model, tmp_path):
    ultravox, text = _copy(tiny_model, tmp_path)
    tensors = load_file(str(ultravox / "model.safetensors"))
    tensors["multi_modal_projector.ln_pre.weight"] = torch.ones(3)
    save_file(tensors, str(ultravox / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="has shape"):
        load_model(locate_files(ultravox, text), CPU, torch.float32)


def test_missing_shard_names_file_repo_and_command(tiny_model, tmp_path):
    ultravox, text = _copy(tiny_model, tmp_path)
    (text / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ModelFilesMissingError) as info:
        load_model(locate_files(ultravox, text), CPU, torch.float32)
    message = str(info.value)
    assert "model-00002-of-00002.safetensors" in message
    assert TEXT_MODEL_ID in message
    assert "airvoice models prefetch" in message


def test_missing_config_is_a_clear_error(tiny_model, tmp_path):
    ultravox, text = _copy(tiny_model, tmp_path)
    (ultravox / "config.json").unlink()
    with pytest.raises(ModelFilesMissingError, match=r"config\.json"):
        locate_files(ultravox, text)


def test_audio_tower_from_audio_model_repo(tmp_path, no_network):
    built = build_tiny_ultravox(tmp_path, embed_audio_config=False, text_shards=1, seed=3)
    assert built.audio_model_dir is not None
    files = locate_files(built.ultravox_dir, built.text_model_dir, built.audio_model_dir)
    model, config = load_model(files, CPU, torch.float32)
    assert config.audio_config_embedded is False
    whisper = load_file(str(built.audio_model_dir / "model.safetensors"))
    state = model.state_dict()
    encoder_keys = [k for k in whisper if k.startswith("model.encoder.")]
    assert encoder_keys
    for key in encoder_keys:
        assert torch.equal(state["audio_tower." + key.removeprefix("model.encoder.")], whisper[key])
    # The decoder and proj_out of a full Whisper checkpoint are ignored, not loaded.
    assert not any("decoder" in k or "proj_out" in k for k in state)


def test_loads_by_repo_id_from_hf_cache_offline(tiny_model, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_model.ultravox_dir, cache, ULTRAVOX_ID, "a" * 40)
    install_in_hf_cache(tiny_model.text_model_dir, cache, TEXT_MODEL_ID, "b" * 40)
    files = locate_files(ULTRAVOX_ID, cache_dir=cache)
    assert files.text_model_dir == cache / "models--meta-llama--Llama-3.2-1B-Instruct/snapshots" / (
        "b" * 40
    )
    model, _ = load_model(files, CPU, torch.float32)
    assert model.language_model.config.hidden_size == 64
    assert not no_network


def test_uncached_text_model_names_the_repo(tiny_model, tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_model.ultravox_dir, cache, ULTRAVOX_ID, "a" * 40)
    with pytest.raises(ModelFilesMissingError) as info:
        locate_files(ULTRAVOX_ID, cache_dir=cache)
    assert TEXT_MODEL_ID in str(info.value)
    assert "airvoice models prefetch" in str(info.value)
    assert AUDIO_MODEL_ID not in str(info.value)  # the audio config is embedded: not needed
