"""Helpers of the cloud tests (a module: conftest is not importable)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from airvoice.cli import app

API_KEY = "rpa_TESTKEY_do_not_print_0123456789"
HF_TOKEN = "hf_TESTTOKEN_secret_987654321"
SERVER_TOKEN = "cloud-test-token-0123456789"
VOICE = "jm_kumo"
FAST = ["--poll-interval", "0.05"]


def run_cli(*args: str):
    """Run the airvoice CLI; returns the click result (stdout and stderr kept apart)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def deploy_json(*args: str) -> tuple[int, dict | None, str]:
    """``airvoice deploy --json ...`` with fast polling: (exit code, parsed stdout, stderr)."""
    result = run_cli("deploy", "--json", *FAST, *args)
    data = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, data, result.stderr
