"""README's "Deploy and talk", command by command, against the fake RunPod.

``airvoice deploy`` runs as written (plus a session token the local server knows and a fast
status poll); ``airvoice talk`` then runs exactly as deploy printed it, in its own process, on
an ALSA ``null`` sound card (a real ALSA device that records silence): this machine has none.
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
from pathlib import Path

from cloud_helpers import API_KEY, FAST, HF_TOKEN, SERVER_TOKEN, run_cli

from airvoice.testing.network import loopback_only_env

ROOT = Path(__file__).resolve().parents[2]
NULL_SOUND_CARD = "pcm.!default {\n    type null\n}\n"


def deploy_and_talk() -> list[str]:
    """The commands of README's "Deploy and talk" block, comments dropped."""
    section = ROOT.joinpath("README.md").read_text().split("## Deploy and talk")[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block
    return [line.split("  #")[0].strip() for line in block.group(1).strip().splitlines()]


def test_readme_deploy_then_talk(fake, proxy_to_server, tmp_path, monkeypatch):
    export, deploy, talk = deploy_and_talk()
    # The variables README exports are the ones the fake RunPod's fixture set.
    names = [item.split("=")[0] for item in shlex.split(export)[1:]]
    assert names == ["RUNPOD_API_KEY", "HF_TOKEN"]

    args = shlex.split(deploy)
    assert args[:2] == ["airvoice", "deploy"]
    result = run_cli(*args[1:], "--token", SERVER_TOKEN, *FAST)
    assert result.exit_code == 0, result.output
    printed = re.search(r"Connect:\s+(airvoice talk \S+ --token \S+)", result.stderr)
    assert printed, result.stderr  # deploy's report goes to the terminal (stderr)
    command = shlex.split(printed.group(1))
    # README's talk line has the same shape: airvoice talk <endpoint> --token <token>.
    assert [w for i, w in enumerate(shlex.split(talk)) if i != 2 and i != 4] == [
        w for i, w in enumerate(command) if i != 2 and i != 4
    ]
    assert command[2] == f"ws://127.0.0.1:{proxy_to_server}/ws" and command[4] == SERVER_TOKEN

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / ".asoundrc").write_text(NULL_SOUND_CARD)
    env = loopback_only_env(tmp_path / "guard", HOME=str(home))
    env.pop("AIRVOICE_TOKEN", None)
    process = subprocess.Popen(
        ["airvoice", *command[1:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    try:
        first = process.stdout.readline()
    finally:
        process.send_signal(signal.SIGINT)  # Ctrl-C hangs up
    out, err = process.communicate(timeout=60)
    assert "connected" in first and "speak when ready" in first, first + out + err
    assert process.returncode == 0 and "hung up" in out, first + out + err
    for secret in (API_KEY, HF_TOKEN):
        assert secret not in result.output + out + err
