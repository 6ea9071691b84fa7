"""README's first screen: each command on it is run by a test, as written.

- ``bash .ci/run`` is what CI runs (this suite runs inside it), and it passes shellcheck;
- ``. .venv/bin/activate && airvoice demo`` runs here, in its own shell;
- the deploy-and-talk commands run against the fake RunPod: tests/cloud/test_readme_deploy.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from demo_helpers import DemoProcess, check_round_trip

from airvoice.testing.network import loopback_only_env

ROOT = Path(__file__).resolve().parents[1]
FIRST_SCREEN = ROOT.joinpath("README.md").read_text().split("\n## Other ways in")[0]


def blocks() -> list[str]:
    """The fenced bash blocks of README's first screen."""
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", FIRST_SCREEN, re.S)]


def test_the_first_screen_is_what_it_is_the_two_commands_then_deploy_and_talk():
    intro = FIRST_SCREEN.split("```")[0]
    assert "voice assistant" in intro and len(intro.split()) < 120
    tests, demo, deploy = blocks()
    assert tests == "bash .ci/run" and demo == ". .venv/bin/activate && airvoice demo"
    assert "airvoice deploy" in deploy and "airvoice talk" in deploy
    assert FIRST_SCREEN.index(demo) < FIRST_SCREEN.index("## Deploy and talk")
    assert "docs/architecture.md" in FIRST_SCREEN
    assert len(FIRST_SCREEN.splitlines()) <= 40  # one screen


def test_the_test_command_is_what_ci_runs_and_passes_shellcheck():
    (command, *_) = blocks()
    ci = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert re.search(rf"^\s+run: {re.escape(command)}$", ci, re.M)
    shellcheck = Path(sys.executable).with_name("shellcheck")
    found = str(shellcheck) if shellcheck.exists() else shutil.which("shellcheck")
    assert found, "shellcheck is not installed: pip install -e '.[dev]'"
    done = subprocess.run([found, ".ci/run"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_demo_command_runs_a_spoken_round_trip(tmp_path):
    _, command, _ = blocks()
    # `.venv` is where `bash .ci/run` installs the project; here it is this interpreter's venv.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = loopback_only_env(tmp_path / "guard", dict(os.environ))
    demo = DemoProcess(["bash", "-c", command], env, tmp_path)
    code, output, errors = demo.finish(timeout=400)
    assert code == 0, output + errors
    check_round_trip(output)
    assert 'you (in Kokoro\'s voice): "What is the weather like in Paris today?"' in output
    assert "the same server in your browser: airvoice demo --web" in output
    assert "#token=" not in output + errors  # without --web the token is never shown
