"""The command line: version, a light import (the demo: test_demo.py)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from airvoice import __version__
from airvoice.cli import app

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
