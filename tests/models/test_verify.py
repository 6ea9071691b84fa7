"""``airvoice models verify`` and ``serve``'s check catch missing, truncated and changed files."""

from __future__ import annotations

import os

from models_helpers import TEXT, ULTRAVOX

from airvoice.config import ServerConfig
from airvoice.models import store
from airvoice.server.engines import check_models


def test_verify_catches_deleted_truncated_and_changed_files_and_prefetch_repairs(hub, cli, cache):
    assert cli("models", "prefetch", "--preset", "ultravox-1b", "--cache-dir", str(cache)).code == 0
    assert cli("models", "verify", "--cache-dir", str(cache)).code == 0
    lock = store.read_lock(cache)
    text = store.snapshot_dir(cache, TEXT, lock.repos[TEXT].commit)
    ultravox = store.snapshot_dir(cache, ULTRAVOX, lock.repos[ULTRAVOX].commit)

    (text / "tokenizer.json").unlink()  # deleted
    shard = (text / "model-00002-of-00002.safetensors").resolve()
    with shard.open("r+b") as f:  # truncated (a disk that filled up)
        f.truncate(shard.stat().st_size // 2)
    weights = (ultravox / "model.safetensors").resolve()
    data = bytearray(weights.read_bytes())  # changed in place, same size
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))

    run = cli("models", "verify", "--cache-dir", str(cache))
    assert run.code == 1, run.output
    out = run.output
    assert f"{TEXT}/tokenizer.json: missing" in out
    assert f"{TEXT}/model-00002-of-00002.safetensors: truncated" in out
    assert f"{ULTRAVOX}/model.safetensors: changed" in out
    assert "airvoice models prefetch" in out

    # serve refuses to start for the same reasons (checked offline, before it listens).
    config = ServerConfig(ultravox=ULTRAVOX, cache_dir=str(cache), kokoro=str(cache))
    missing = check_models(config)
    assert missing is not None
    message = missing.message()
    assert "truncated" in message and "changed" in message
    assert f"airvoice models prefetch --repo {ULTRAVOX}" in message

    # A rerun fetches only what is wrong, and the cache verifies again.
    hub.reset_log()
    assert cli("models", "prefetch", "--preset", "ultravox-1b", "--cache-dir", str(cache)).code == 0
    fetched = sorted(r.path.rsplit("/", 1)[-1] for r in hub.downloads())
    assert fetched == ["model-00002-of-00002.safetensors", "model.safetensors"]
    assert (text / "tokenizer.json").is_file()  # its blob was intact: linked again, not fetched
    assert cli("models", "verify", "--full", "--cache-dir", str(cache)).code == 0


def test_verify_without_a_lock_says_to_prefetch(tmp_path, cli):
    run = cli("models", "verify", "--cache-dir", str(tmp_path))
    assert run.code == 1 and "airvoice models prefetch" in run.output


def test_verify_rehashes_only_files_whose_mtime_moved(hub, cli, cache):
    assert cli("models", "prefetch", "--repo", ULTRAVOX, "--cache-dir", str(cache)).code == 0
    lock = store.read_lock(cache)
    assert store.verify(cache, lock).hashed == 0
    weights = store.snapshot_dir(cache, ULTRAVOX, lock.repos[ULTRAVOX].commit) / "model.safetensors"
    os.utime(weights.resolve(), ns=(1, 1))  # copied without keeping times: same content
    result = store.verify(cache, lock)
    assert result.ok and result.hashed == 1
