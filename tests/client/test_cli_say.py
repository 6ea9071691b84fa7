"""``airvoice say`` and ``airvoice talk`` from the command line, against a real server."""

from __future__ import annotations

import wave

import numpy as np
from typer.testing import CliRunner

from airvoice.cli import app
from airvoice.client import write_wav
from airvoice.server.app import create_app
from airvoice.server.run import ServerThread
from airvoice.testing.server import TOKEN, offline_server_config, ws_url

runner = CliRunner()


def _question(tmp_path, speech16):
    path = tmp_path / "question.wav"
    write_wav(path, np.concatenate([speech16, np.zeros(16000, np.int16)]), 16000)
    return path


def test_say_prints_the_reply_and_writes_audio(engines, speech16, tmp_path):
    config = offline_server_config()
    with ServerThread(create_app(config, engines), config) as server:
        out = tmp_path / "reply.wav"
        result = runner.invoke(
            app,
            [
                "say",
                ws_url(server, token=None),
                "--in",
                str(_question(tmp_path, speech16)),
                "--out",
                str(out),
                "--token",
                TOKEN,
            ],
        )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0] and "from your last word to the bot's voice" in result.output
    with wave.open(str(out)) as f:
        assert f.getframerate() == 24000 and f.getnframes() > 24000 * 0.2
    assert TOKEN not in result.output


def test_say_with_a_wrong_token_exits_3_without_traceback(engines, speech16, tmp_path):
    config = offline_server_config()
    with ServerThread(create_app(config, engines), config) as server:
        result = runner.invoke(
            app,
            ["say", ws_url(server, token="wrong"), "--in", str(_question(tmp_path, speech16))],
        )
    assert result.exit_code == 3
    assert "refused the session token" in result.output and "Traceback" not in result.output


def test_say_to_a_full_server_exits_4(engines, speech16, tmp_path):
    from websockets.sync.client import connect

    config = offline_server_config(max_sessions=1)
    with ServerThread(create_app(config, engines), config) as server:
        with connect(ws_url(server)):  # holds the only slot
            result = runner.invoke(
                app, ["say", ws_url(server), "--in", str(_question(tmp_path, speech16))]
            )
    assert result.exit_code == 4 and "full" in result.output
    assert "Traceback" not in result.output


def test_say_to_an_unreachable_host_exits_5(tmp_path, speech16):
    result = runner.invoke(
        app, ["say", "ws://127.0.0.1:9/ws", "--in", str(_question(tmp_path, speech16))]
    )
    assert result.exit_code == 5 and "cannot reach" in result.output
    assert "Traceback" not in result.output


def test_talk_needs_a_url_and_lists_no_devices_without_a_sound_card():
    result = runner.invoke(app, ["talk"])
    assert result.exit_code == 2 and "server URL" in result.output
    result = runner.invoke(app, ["talk", "--list-devices"])  # this machine has no sound card
    assert result.exit_code == 0
    assert "no sound devices" in result.output and "Traceback" not in result.output
