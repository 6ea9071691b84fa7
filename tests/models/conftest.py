"""A fake Hugging Face hub on 127.0.0.1 serving the tiny offline models, and the CLI run in a
subprocess against it (``HF_ENDPOINT``), with every non-loopback connection refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from models_helpers import KOKORO, RUNNER, TEXT, TOKEN, ULTRAVOX

from airvoice.testing.fakehub import FakeHub
from airvoice.testing.kokoro import build_tiny_kmodel
from airvoice.testing.ultravox import build_tiny_ultravox


@dataclass
class Run:
    code: int
    output: str
    seconds: float


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub-models")
    tiny = build_tiny_ultravox(root / "uv")
    # Files a real repo holds that the server never loads: must not be downloaded.
    decoys = root / "decoys"
    (decoys / "original").mkdir(parents=True)
    (decoys / "original" / "consolidated.00.pth").write_bytes(b"\0" * 4096)
    (decoys / "pytorch_model.bin").write_bytes(b"\1" * 2048)
    (decoys / "README.md").write_text("# model card\n")
    (decoys / "ultravox_model.py").write_text("raise SystemExit('remote code must never run')\n")
    kokoro = build_tiny_kmodel(root / "kokoro")
    return {
        "ultravox": tiny.ultravox_dir,
        "text": tiny.text_model_dir,
        "kokoro": kokoro,
        "decoys": decoys,
    }


def _with_decoys(folder: Path, decoys: Path, names: list[str]) -> dict[str, Path]:
    files = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    for name in names:
        files[name] = decoys / name
    return files


@pytest.fixture
def hub(tiny_models):
    """The fake hub: the tiny Ultravox (public) and its gated language model. ``TOKEN`` is a
    valid token granted access to the gated repo."""
    with FakeHub() as hub:
        decoys = tiny_models["decoys"]
        hub.add_repo(
            ULTRAVOX,
            _with_decoys(tiny_models["ultravox"], decoys, ["README.md", "ultravox_model.py"]),
        )
        hub.add_repo(
            TEXT,
            _with_decoys(
                tiny_models["text"], decoys, ["original/consolidated.00.pth", "pytorch_model.bin"]
            ),
            gated=True,
        )
        hub.add_token(TOKEN, [TEXT])
        yield hub


@pytest.fixture
def with_kokoro(hub, tiny_models):
    hub.add_repo(KOKORO, _with_decoys(tiny_models["kokoro"], tiny_models["decoys"], ["README.md"]))
    return hub


@pytest.fixture
def cli(hub, tmp_path):
    """Run ``airvoice ...`` in a fresh process against the fake hub."""
    home = tmp_path / "hf-home"  # no saved login from the machine can leak in

    def run(*args: str, token: str | None = TOKEN, timeout: float = 120) -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
        env.update(HF_ENDPOINT=hub.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1")
        env.update(COLUMNS="200")
        if token is not None:
            env["HF_TOKEN"] = token
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", RUNNER, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(out.returncode, out.stdout + out.stderr, time.perf_counter() - started)

    return run


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "hub-cache"
