"""Presets and file selection: only what the server loads, no duplicate formats."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from airvoice.cli import app
from airvoice.models import registry

# The file list of meta-llama/Llama-3.1-8B-Instruct on the hub.
LLAMA_8B = [
    ".gitattributes",
    "LICENSE",
    "README.md",
    "USE_POLICY.md",
    "config.json",
    "generation_config.json",
    "model-00001-of-00004.safetensors",
    "model-00002-of-00004.safetensors",
    "model-00003-of-00004.safetensors",
    "model-00004-of-00004.safetensors",
    "model.safetensors.index.json",
    "original/consolidated.00.pth",
    "original/params.json",
    "original/tokenizer.model",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
]


def test_text_model_gets_safetensors_shards_and_tokenizer_only():
    assert registry.select_files("text", LLAMA_8B) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00004.safetensors",
        "model-00002-of-00004.safetensors",
        "model-00003-of-00004.safetensors",
        "model-00004-of-00004.safetensors",
        "model.safetensors.index.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]


def test_ultravox_repo_skips_remote_code_and_bin_duplicates():
    files = [
        "config.json",
        "model.safetensors",
        "pytorch_model.bin",
        "ultravox_model.py",
        "ultravox_config.py",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "README.md",
    ]
    selected = registry.select_files("ultravox", files)
    assert "model.safetensors" in selected and "preprocessor_config.json" in selected
    assert not [n for n in selected if n.endswith((".py", ".bin", ".md"))]


def test_kokoro_voices_asked_for_or_all():
    files = ["config.json", "kokoro-v1_0.pth", "README.md", "samples/HEARME.wav"] + [
        f"voices/{v}.pt" for v in ("af_heart", "am_adam", "bf_emma")
    ]
    assert registry.select_files("kokoro", files) == [
        "config.json",
        "kokoro-v1_0.pth",
        "voices/af_heart.pt",
        "voices/am_adam.pt",
        "voices/bf_emma.pt",
    ]
    assert registry.select_files("kokoro", files, ["am_adam"]) == [
        "config.json",
        "kokoro-v1_0.pth",
        "voices/am_adam.pt",
    ]
    assert registry.missing_voices(files, ["am_adam", "zz_none"]) == ["zz_none"]


def test_second_level_repos_come_from_the_ultravox_config():
    embedded = {"text_model_id": "meta-llama/X", "audio_model_id": "openai/w", "audio_config": {}}
    assert registry.second_level_repos(embedded) == [("meta-llama/X", "text")]
    separate = {"text_model_id": "meta-llama/X", "audio_model_id": "openai/w"}
    assert registry.second_level_repos(separate) == [
        ("meta-llama/X", "text"),
        ("openai/w", "audio"),
    ]


def test_presets_have_sizes_vram_and_gated_flags():
    eight = registry.PRESETS["ultravox-8b"]
    assert eight.gated and 15e9 < eight.approx_bytes < 20e9 and eight.vram_gb <= 24
    assert registry.PRESETS["ultravox-1b"].vram_gb < eight.vram_gb
    assert not registry.PRESETS["kokoro-82m"].gated
    with pytest.raises(KeyError, match="ultravox-8b"):
        registry.resolve_presets(["ultravox-70b"])


def test_list_shows_presets_absent_from_an_empty_cache(tmp_path):
    result = CliRunner().invoke(app, ["models", "list", "--cache-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = {p["name"]: p for p in data["presets"]}
    assert set(names) == {"ultravox-8b", "ultravox-1b", "kokoro-82m"}
    assert all(p["state"] == "absent" and p["bytes_on_disk"] == 0 for p in names.values())
    assert names["ultravox-8b"]["default"] and names["ultravox-8b"]["vram_gb"] > 0
    table = CliRunner().invoke(
        app, ["models", "list", "--cache-dir", str(tmp_path)], env={"COLUMNS": "160"}
    )
    assert table.exit_code == 0 and "ultravox-1b" in table.output and "VRAM" in table.output
