"""The client examples run as a user runs them (a separate process) against a local server with
the offline models; the process itself may reach loopback only."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np

from airvoice.client import write_wav
from airvoice.server.app import create_app
from airvoice.server.run import ServerThread
from airvoice.testing import network
from airvoice.testing.server import TOKEN, offline_server_config, ws_url

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def loopback_only_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of an example's process: loopback only, no token of ours."""
    base = {k: v for k, v in os.environ.items() if k != "AIRVOICE_TOKEN"}
    return network.loopback_only_env(tmp_path / "guard", base, **extra)


def question_wav(tmp_path: Path, speech16: np.ndarray) -> Path:
    path = tmp_path / "question.wav"
    write_wav(path, np.concatenate([speech16, np.zeros(16000, np.int16)]), 16000)
    return path


def voiced_seconds(path: Path) -> float:
    with wave.open(str(path)) as f:
        assert f.getframerate() == 24000 and f.getnchannels() == 1
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    return float(np.count_nonzero(np.abs(pcm) > 300)) / 24000


def run_example(args: list[str], env: dict[str, str], timeout: float = 120):
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_guard_refuses_the_internet_in_example_processes(tmp_path):
    code = "import socket; socket.create_connection(('192.0.2.1', 443), timeout=1)"
    done = run_example(["-c", code], loopback_only_env(tmp_path))
    assert done.returncode != 0 and "blocked" in done.stderr


def test_talk_example_with_file_audio_has_a_conversation(engines, speech16, tmp_path):
    config = offline_server_config()
    reply = tmp_path / "reply.wav"
    env = loopback_only_env(tmp_path, AIRVOICE_TOKEN=TOKEN)
    with ServerThread(create_app(config, engines), config) as server:
        done = run_example(
            [
                str(EXAMPLES / "talk.py"),
                ws_url(server, token=None),
                "--in",
                str(question_wav(tmp_path, speech16)),
                "--out",
                str(reply),
            ],
            env,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "connected" in done.stdout
    bot_lines = [line for line in done.stdout.splitlines() if line.startswith("bot: ")]
    assert bot_lines and bot_lines[0][len("bot: ") :].strip(), done.stdout
    assert "from your last word to the bot's voice" in done.stdout
    assert voiced_seconds(reply) > 0.2
    assert TOKEN not in done.stdout + done.stderr


def test_talk_example_with_a_wrong_token_says_so_and_exits_3(engines, speech16, tmp_path):
    config = offline_server_config()
    env = loopback_only_env(tmp_path, AIRVOICE_TOKEN="not-the-token")
    with ServerThread(create_app(config, engines), config) as server:
        done = run_example(
            [
                str(EXAMPLES / "talk.py"),
                ws_url(server, token=None),
                "--in",
                str(question_wav(tmp_path, speech16)),
            ],
            env,
        )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "refused the session token" in done.stderr and "Traceback" not in done.stderr


def test_one_turn_from_file_example_prints_the_reply_and_saves_it(engines, speech16, tmp_path):
    config = offline_server_config()
    reply = tmp_path / "reply.wav"
    env = loopback_only_env(tmp_path, AIRVOICE_TOKEN=TOKEN)
    with ServerThread(create_app(config, engines), config) as server:
        done = run_example(
            [
                str(EXAMPLES / "one_turn_from_file.py"),
                ws_url(server, token=None),
                str(question_wav(tmp_path, speech16)),
                str(reply),
            ],
            env,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("bot: ") and first[len("bot: ") :].strip()
    assert "ms from your last word to the bot's voice = turn end + network" in done.stdout
    assert voiced_seconds(reply) > 0.2


def test_one_turn_from_file_example_unreachable_server_exits_5(tmp_path, speech16):
    done = run_example(
        [
            str(EXAMPLES / "one_turn_from_file.py"),
            "ws://127.0.0.1:9/ws",
            str(question_wav(tmp_path, speech16)),
        ],
        loopback_only_env(tmp_path),
    )
    assert done.returncode == 5 and "cannot reach" in done.stderr
