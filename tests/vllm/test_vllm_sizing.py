"""Engine choice, vLLM sizing and the offline model view: no engine is started here."""

from __future__ import annotations

import json

import pytest

from airvoice.config import ServerConfig, resolve_engine, use_fp8
from airvoice.engines.ultravox.backends.vllm_engine import (
    VllmSizing,
    VllmUltravoxEngine,
    build_prompt,
    model_view,
)
from airvoice.engines.ultravox.conversation import UserTurn
from airvoice.engines.ultravox.loading import check_files, locate_files
from airvoice.errors import ModelFilesMissingError
from airvoice.testing.ultravox import build_tiny_ultravox

GB = 1 << 30


def test_engine_choice():
    assert resolve_engine("torch") == "torch"
    assert resolve_engine("vllm") == "vllm"  # installed here (the CPU build)
    assert resolve_engine("auto", "cpu") == "torch"
    assert resolve_engine("auto") == "torch"  # no CUDA on this machine
    with pytest.raises(ValueError, match="auto, vllm, torch"):
        resolve_engine("tensorrt")


def test_fp8_on_ada_for_large_weights_only():
    l4, a5000, h100 = (8, 9), (8, 6), (9, 0)
    assert use_fp8(l4, 16 * GB, 24 * GB)  # ultravox-8b on an L4
    assert not use_fp8(l4, int(2.5 * GB), 24 * GB)  # ultravox-1b: bf16 fits with room
    assert not use_fp8(a5000, 16 * GB, 24 * GB)  # Ampere has no FP8
    assert not use_fp8(h100, 16 * GB, 80 * GB)
    assert not use_fp8(None, 16 * GB, 24 * GB)


def test_cpu_sizing_and_config_fields(tmp_path):
    tiny = build_tiny_ultravox(tmp_path, head_size=32)
    files = locate_files(tiny.ultravox_dir, tiny.text_model_dir)
    config = ServerConfig(device="cpu", tensor_parallel_size=2, max_model_len=4096)
    sizing = VllmSizing.for_device(config, files, check_files(files))
    assert sizing.enforce_eager and sizing.block_size == 32 and sizing.dtype == "float32"
    assert sizing.tensor_parallel_size == 2 and sizing.max_model_len == 4096
    assert sizing.quantization is None and sizing.kv_cache_dtype == "auto"
    assert ServerConfig().max_model_len == 8192 and ServerConfig().engine == "auto"
    # vLLM's CPU default would take half the RAM for the KV cache: 1 GiB unless told.
    assert sizing.kv_cache_memory_bytes == GB
    small = ServerConfig(device="cpu", kv_cache_gib=0.25)
    assert VllmSizing.for_device(small, files, check_files(files)).kv_cache_memory_bytes == GB // 4
    assert ServerConfig(max_sessions="auto").max_sessions is None


def test_model_view_resolves_offline_and_names_no_remote_code(tmp_path):
    tiny = build_tiny_ultravox(tmp_path / "model", embed_audio_config=False, head_size=32)
    files = locate_files(tiny.ultravox_dir, tiny.text_model_dir, tiny.audio_model_dir)
    view = model_view(files, tmp_path / "view")
    config = json.loads((view / "config.json").read_text())
    assert "auto_map" not in config
    assert config["text_model_id"] == str(tiny.text_model_dir.resolve())
    assert config["audio_model_id"] == str(tiny.audio_model_dir.resolve())
    assert (view / "tokenizer.json").resolve() == (tiny.ultravox_dir / "tokenizer.json").resolve()
    assert json.loads((tiny.ultravox_dir / "config.json").read_text())["auto_map"]  # untouched


def test_a_missing_language_model_is_the_usual_clear_error(tmp_path):
    tiny = build_tiny_ultravox(tmp_path, head_size=32)
    with pytest.raises(ModelFilesMissingError, match=r"meta-llama/Llama-3\.2-1B-Instruct"):
        VllmUltravoxEngine.load(tiny.ultravox_dir)  # text_model_id is not in the cache


def test_each_spoken_turn_is_one_placeholder_with_its_audio_and_uuid():
    import numpy as np

    one = UserTurn(None, samples=np.zeros(16000, np.float32), token_count=3, uuid="a")
    two = UserTurn(None, samples=np.ones(8000, np.float32), token_count=2, uuid="b")
    items = [1, 2, *[(one.key, i) for i in range(3)], 3, *[(two.key, i) for i in range(2)], 4]
    prompt = build_prompt(items, {one.key: one, two.key: two}, [99], "salt")
    assert prompt["prompt_token_ids"] == [1, 2, 99, 3, 99, 4]
    assert [a.size for a, _ in prompt["multi_modal_data"]["audio"]] == [16000, 8000]
    assert prompt["multi_modal_uuids"] == {"audio": ["a", "b"]}
    assert prompt["cache_salt"] == "salt"
