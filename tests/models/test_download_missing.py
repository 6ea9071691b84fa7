"""``airvoice serve --download-missing``: the fallback of a pod that had no prefetch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from models_helpers import KOKORO, RUNNER, TOKEN, ULTRAVOX

SESSION = "session-token-for-download-missing"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_downloads_what_is_missing_then_serves_offline(with_kokoro, tmp_path, cache):
    hub = with_kokoro
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS"))}
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_TOKEN=TOKEN,
        AIRVOICE_TOKEN=SESSION,
        AIRVOICE_TTS_BACKEND="torch",
        AIRVOICE_DEVICE="cpu",
        AIRVOICE_VOICE="af_tiny",
        COLUMNS="200",
    )
    args = ["serve", "--download-missing", "--ultravox", ULTRAVOX, "--kokoro", KOKORO,
            "--cache-dir", str(cache), "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        healthy = False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        assert healthy, "the server never became healthy"
        assert (cache / "airvoice-models.lock.json").is_file()
        assert hub.downloads()  # it fetched the weights from the (fake) hub
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "fetching missing weights" in output
    assert TOKEN not in output and SESSION not in output
