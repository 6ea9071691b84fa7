"""``airvoice demo``: a spoken round trip through a real server and ``VoiceClient``, offline;
``--web`` keeps that server up for the browser. (README's plain ``airvoice demo``: test_readme.)"""

from __future__ import annotations

import signal
import sys
import urllib.request
import wave
from pathlib import Path

import numpy as np
from demo_helpers import DemoProcess, check_round_trip
from typer.testing import CliRunner

from airvoice.cli import app
from airvoice.client import VoiceClient
from airvoice.client.audio import to_pcm16
from airvoice.testing.network import loopback_only_env

BIN = Path(sys.executable).parent


def test_demo_answers_a_wav_then_serves_the_web_page_until_ctrl_c(speech16, tmp_path):
    question, reply = tmp_path / "question.wav", tmp_path / "reply.wav"
    stereo_24k = np.repeat(to_pcm16(speech16, 16000, 24000)[:, None], 2, axis=1)
    with wave.open(str(question), "wb") as f:  # a stereo 24 kHz WAV, as a phone might record
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(24000)
        f.writeframes(stereo_24k.astype("<i2").tobytes())
    env = loopback_only_env(tmp_path / "guard")
    command = [str(BIN / "airvoice"), "demo", "--web", "--in", str(question), "--out", str(reply)]
    demo = DemoProcess(command, env, tmp_path)
    try:
        page = demo.read_until(r"open http://127\.0\.0\.1:(\d+)/#token=(\S+) in a browser", 400)
        port, token = page.group(1), page.group(2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.status == 200 and b"<html" in response.read().lower()
        _connects(f"ws://127.0.0.1:{port}/ws", token)
    finally:
        demo.process.send_signal(signal.SIGINT)  # Ctrl-C
    code, output, errors = demo.finish(timeout=60)
    assert code == 0, output + errors
    check_round_trip(output)
    assert "you (in Kokoro" not in output  # the question came from the file, resampled
    assert f"({speech16.size / 16000:.1f} s of speech)" in output
    with wave.open(str(reply)) as f:
        assert f.getframerate() == 24000 and f.getnframes() > 24000 * 0.2
    assert f"the bot's voice: {reply}" in output and "stopped" in output
    # The token is printed once, in the line meant for the user; never in the logs.
    assert output.count(token) == 1 and token not in errors


def _connects(url: str, token: str) -> None:
    import asyncio

    async def session() -> None:
        client = VoiceClient(url, token, reconnect=False)
        await client.connect()
        await client.close()

    asyncio.run(session())


def test_demo_rejects_a_file_that_is_not_wav(tmp_path):
    path = tmp_path / "question.wav"
    path.write_bytes(b"not a wav file at all")
    result = CliRunner().invoke(app, ["demo", "--in", str(path)])
    assert result.exit_code == 1
    assert "as a WAV file" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_demo_with_real_weights_not_in_the_cache_says_how_to_fetch_them(tmp_path, no_network):
    repo = "fixie-ai/ultravox-v0_5-llama-3_2-1b"
    result = CliRunner().invoke(
        app, ["demo", "--ultravox", repo, "--cache-dir", str(tmp_path / "empty")]
    )
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"airvoice models prefetch --repo {repo}" in text
    assert "stand-in" not in text and "Traceback" not in text
    assert not no_network
