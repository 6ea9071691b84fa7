"""``airvoice talk`` checks the microphone and the speaker before it connects.

This machine has no sound card: the real sounddevice and PortAudio find no default device. An
ALSA ``null`` device (a real ALSA plugin that records silence and discards what it plays),
configured in a private HOME, stands in for a sound card where one is needed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

from airvoice.cli import app

NULL_SOUND_CARD = "pcm.!default {\n    type null\n}\n"


@contextmanager
def listener() -> Iterator[tuple[str, list[socket.socket]]]:
    """A loopback TCP port that records every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    accepted: list[socket.socket] = []
    try:
        yield f"ws://127.0.0.1:{server.getsockname()[1]}/ws", accepted
        while True:
            try:
                accepted.append(server.accept()[0])
            except BlockingIOError:
                break
    finally:
        for conn in accepted:
            conn.close()
        server.close()


def talk(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "AIRVOICE_TOKEN"}
    env["HOME"] = str(home)  # ALSA reads ~/.asoundrc
    return subprocess.run(
        [sys.executable, "-m", "airvoice.cli", "talk", *args, "--token", "t"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_without_the_audio_package_talk_names_it_and_does_not_connect(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # what `import` sees when absent
    with listener() as (url, accepted):
        result = CliRunner().invoke(app, ["talk", url, "--token", "t"])
    assert result.exit_code == 1
    assert "pip install 'airvoice[audio]'" in one_line(result.output)
    assert "connected" not in result.output and "Traceback" not in result.output
    assert accepted == []


def test_without_a_sound_card_talk_says_so_and_does_not_connect(tmp_path):
    with listener() as (url, accepted):
        done = talk(tmp_path, url)
    error = one_line(done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no microphone" in error and "--input-device" in error, error
    assert "--list-devices" in error and "Traceback" not in error
    assert "connected" not in done.stdout
    assert accepted == []


def test_a_speaker_that_is_not_there_is_named(tmp_path):
    (tmp_path / ".asoundrc").write_text(NULL_SOUND_CARD)  # a default mic and speaker exist
    with listener() as (url, accepted):
        done = talk(tmp_path, url, "--output-device", "Studio Monitors")
    error = one_line(done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no speaker 'Studio Monitors'" in error, error
    assert accepted == []
