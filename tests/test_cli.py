"""The command line: version, the offline demo, and a light import."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import wave
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from airvoice import __version__
from airvoice.cli import app
from airvoice.testing.audio import speechlike

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"airvoice {__version__}"


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "airvoice.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == f"airvoice {__version__}"


def test_import_is_light():
    code = (
        "import sys, airvoice, airvoice.cli, airvoice.config, airvoice.errors;"
        "heavy = [m for m in ('torch', 'transformers', 'pipecat') if m in sys.modules];"
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_base_install_pulls_no_torch_or_pipecat():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    assert "torch" not in base and "pipecat" not in base and "transformers" not in base
    assert any(d.startswith("torch") for d in project["optional-dependencies"]["engines"])


def test_demo_runs_turns_offline(no_network, tmp_path):
    out = tmp_path / "reply.wav"
    result = runner.invoke(app, ["demo", "--turns", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "turn 1" in result.output and "turn 2" in result.output
    assert "time to first token" in result.output
    assert "reused from the KV cache" in result.output
    assert "spoken by Kokoro-82M" in result.output
    with wave.open(str(out)) as f:
        assert f.getframerate() == 24000 and f.getnframes() > 0
    assert not no_network


def test_demo_takes_a_wav_file(tmp_path):
    path = tmp_path / "question.wav"
    pcm = (speechlike(1.5, rate=24000) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(24000)
        f.writeframes(np.repeat(pcm, 2).tobytes())
    result = runner.invoke(app, ["demo", "--turns", "1", "--in", str(path)])
    assert result.exit_code == 0, result.output
    assert "turn 1 (1.5 s)" in result.output


def test_demo_rejects_a_file_that_is_not_wav(tmp_path):
    path = tmp_path / "question.wav"
    path.write_bytes(b"not a wav file at all")
    result = runner.invoke(app, ["demo", "--turns", "1", "--in", str(path)])
    assert result.exit_code != 0
    assert "as a WAV file" in " ".join(result.output.split())
    assert "Traceback" not in result.output
