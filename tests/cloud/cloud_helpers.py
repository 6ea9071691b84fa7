"""Helpers of the cloud tests (a module: conftest is not importable)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from airvoice.cli import app
from airvoice.cloud.specs import ServerSettings

API_KEY = "rpa_TESTKEY_do_not_print_0123456789"
HF_TOKEN = "hf_TESTTOKEN_secret_987654321"
SERVER_TOKEN = "cloud-test-token-0123456789"
VOICE = "jm_kumo"
FAST = ["--poll-interval", "0.05"]
SETTINGS = ServerSettings(
    token="<session token>",
    preset="ultravox-8b",
    ultravox_repo="fixie-ai/ultravox-v0_5-llama-3_1-8b",
    voice="af_heart",
    idle_shutdown_minutes=30,
)
"""A serving pod's settings, as deploy makes them for the 8B preset."""


def run_cli(*args: str):
    """Run the airvoice CLI; returns the click result (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def deploy_json(*args: str) -> tuple[int, dict | None, str]:
    """``airvoice deploy --json ...`` with fast polling: (exit code, parsed stdout, stderr with
    the terminal's line wrapping undone)."""
    result = run_cli("deploy", "--json", *FAST, *args)
    data = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, data, " ".join(result.stderr.split())


def image_cuda() -> str:
    """The host CUDA the image needs: its torch wheel's CUDA build, as the Dockerfile names it
    (``ARG TORCH_CUDA=13.0``, or a wheel tag such as ``cu126``)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    match = re.search(r"^ARG TORCH_CUDA=(?:cu(\d+)(\d)|(\d+\.\d+))$", text, re.MULTILINE)
    assert match, "the Dockerfile names no CUDA build of torch (ARG TORCH_CUDA=...)"
    if match.group(3):
        return match.group(3)
    return f"{int(match.group(1))}.{match.group(2)}"
