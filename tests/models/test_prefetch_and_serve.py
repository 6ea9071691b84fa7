"""Prefetch from the fake hub, rerun (nothing to do), then serve with the network blocked."""

from __future__ import annotations

import json
import time

import numpy as np
import soxr
from models_helpers import KOKORO, TEXT, TOKEN, ULTRAVOX

from airvoice.config import ServerConfig
from airvoice.engines.kokoro import KokoroEngine
from airvoice.models import store
from airvoice.server.app import create_app
from airvoice.server.engines import check_models
from airvoice.server.run import bound_port, running_server
from airvoice.testing.kokoro import build_kokoro_onnx
from airvoice.testing.wire import WireClient

SESSION_TOKEN = "session-token-0123456789"


def _question(tmp_path) -> np.ndarray:
    """A spoken question as 16 kHz int16 (the real int8 Kokoro: the VAD needs speech)."""
    engine = KokoroEngine(build_kokoro_onnx(tmp_path / "onnx"), backend="onnx", device="cpu")
    pcm24 = engine.synthesize("What is the weather like in Paris today?", "jm_kumo")
    pcm16 = soxr.resample(pcm24.astype(np.float32), 24000, 16000)
    return np.clip(pcm16, -32768, 32767).astype(np.int16)


async def test_prefetch_then_serve_offline(with_kokoro, cli, cache, tmp_path, no_network):
    hub = with_kokoro
    first = cli(
        "models", "prefetch", "--preset", "ultravox-1b", "--preset", "kokoro-82m",
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert first.code == 0, first.output
    assert TOKEN not in first.output
    assert "Downloaded" in first.output and "All set" in first.output

    # The lock records the commit the hub resolved and each file's size and sha256.
    lock = json.loads((cache / store.LOCK_NAME).read_text())
    assert set(lock["repos"]) == {ULTRAVOX, TEXT, KOKORO}
    for repo_id, entry in lock["repos"].items():
        published = hub.state.repos[repo_id]
        assert entry["commit"] == published.commit
        for name, locked in entry["files"].items():
            on_disk = store.snapshot_dir(cache, repo_id, entry["commit"]) / name
            assert locked["size"] == published.files[name].size == on_disk.stat().st_size
            assert locked["sha256"] == store.sha256_file(on_disk)
    # Only what the server loads: no remote code, no .bin or original/ duplicates, no cards.
    fetched = {n for e in lock["repos"].values() for n in e["files"]}
    assert "voices/af_tiny.pt" in fetched and "model-00002-of-00002.safetensors" in fetched
    assert not [n for n in fetched if n.endswith((".py", ".bin", ".md")) or "original/" in n]
    assert not hub.downloads("ultravox_model.py") and not hub.downloads("pytorch_model.bin")
    # The token went to the hub, never to the CDN the LFS files are redirected to.
    cdn = [r for r in hub.requests() if r.path.startswith("/cdn/")]
    assert cdn and not any(r.authorized for r in cdn)
    assert all(r.authorized for r in hub.requests() if "/resolve/" in r.path)

    # Idempotent: a second run downloads nothing, says so, and is quick.
    hub.reset_log()
    second = cli("models", "prefetch", "--preset", "ultravox-1b", "--preset", "kokoro-82m",
                 "--cache-dir", str(cache))  # fmt: skip
    assert second.code == 0, second.output
    assert "Nothing to download" in second.output
    assert not hub.downloads() and not [r for r in hub.requests() if r.method == "HEAD"]
    assert second.seconds < 6, f"the no-op rerun took {second.seconds:.1f} s"
    print(f"\nfirst prefetch {first.seconds:.2f} s, no-op rerun {second.seconds:.2f} s")

    listing = cli("models", "list", "--json", "--cache-dir", str(cache))
    states = {p["name"]: p["state"] for p in json.loads(listing.output)["presets"]}
    assert states == {"ultravox-8b": "absent", "ultravox-1b": "complete", "kokoro-82m": "complete"}
    assert cli("models", "verify", "--cache-dir", str(cache)).code == 0

    # Serve from the cache, by repo id, with every non-loopback connection refused.
    hub.close()
    speech = _question(tmp_path)
    config = ServerConfig(
        host="127.0.0.1",
        port=0,
        token=SESSION_TOKEN,
        ultravox=ULTRAVOX,
        kokoro=KOKORO,
        cache_dir=str(cache),
        voice="af_tiny",
        tts_backend="torch",
        device="cpu",
        smart_turn=False,
        silence_timeout_seconds=0.6,
        max_new_tokens=6,
    )
    assert check_models(config) is None
    started = time.perf_counter()
    app = create_app(config)
    async with running_server(app, config) as server:
        assert app.state.airvoice.engines is not None, app.state.airvoice.load_error
        url = f"ws://127.0.0.1:{bound_port(server)}/ws?token={SESSION_TOKEN}"
        async with WireClient.connect(url) as client:
            await client.stream_pcm(speech)
            await client.stream_silence(1.0)
            await client.wait_for_rtvi("bot-stopped-speaking", timeout=60)
            assert client.received.audio()
    print(f"serve from the cache and one turn: {time.perf_counter() - started:.1f} s")
    assert not no_network
