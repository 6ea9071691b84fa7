"""The hub says no, or the connection breaks: clear messages, the rest completes, reruns resume."""

from __future__ import annotations

import json

from huggingface_hub import constants
from models_helpers import KOKORO, TEXT, TOKEN, ULTRAVOX

from airvoice.models import store

CHECKPOINT = "kokoro-v1_0.pth"


def _locked(cache) -> dict:
    return json.loads((cache / store.LOCK_NAME).read_text())["repos"]


def test_gated_repo_without_access_names_the_page_and_the_rest_completes(hub, cli, cache):
    other = "hf_OtherAccountToken9876543210"
    hub.add_token(other)  # valid, but never granted the gated Llama repo
    run = cli(
        "models", "prefetch", "--preset", "ultravox-1b", "--cache-dir", str(cache), token=other
    )
    assert run.code == 1, run.output
    assert other not in run.output and "Traceback" not in run.output
    assert (
        f"{hub.url}/{TEXT}" in run.output and "accept the Llama 3.2 Community License" in run.output
    )
    assert "not been granted" in run.output
    # The Ultravox repo itself is complete and locked; the gated one is not.
    assert set(_locked(cache)) == {ULTRAVOX}
    assert cli("models", "verify", "--cache-dir", str(cache)).code == 0


def test_gated_repo_without_a_token_says_to_log_in_and_set_hf_token(hub, cli, cache):
    run = cli(
        "models", "prefetch", "--preset", "ultravox-1b", "--cache-dir", str(cache), token=None
    )
    assert run.code == 1
    assert "no Hugging Face token was given" in run.output and "HF_TOKEN" in run.output
    assert f"{hub.url}/{TEXT}" in run.output
    assert set(_locked(cache)) == {ULTRAVOX}


def test_wrong_token_and_missing_repo(hub, cli, cache):
    bad = "hf_RevokedToken000000000000000"
    run = cli("models", "prefetch", "--repo", ULTRAVOX, "--cache-dir", str(cache), token=bad)
    assert run.code == 1 and bad not in run.output
    assert "rejected the Hugging Face token" in run.output and "settings/tokens" in run.output
    assert not (cache / store.LOCK_NAME).exists()

    run = cli("models", "prefetch", "--repo", "nobody/no-such-model", "--cache-dir", str(cache))
    assert run.code == 1 and "nobody/no-such-model was not found" in run.output
    assert TOKEN not in run.output


def test_token_given_on_the_command_line_is_never_printed(hub, cli, cache):
    run = cli(
        "models", "prefetch", "--repo", TEXT, "--token", TOKEN, "--cache-dir", str(cache),
        token=None,
    )  # fmt: skip
    assert run.code == 0, run.output
    assert TOKEN not in run.output
    assert TOKEN not in (cache / store.LOCK_NAME).read_text()


def test_interrupted_download_resumes_on_rerun_and_verifies(with_kokoro, cli, cache):
    hub = with_kokoro
    size = hub.state.repos[KOKORO].files[CHECKPOINT].size
    cut_at = size // 2
    hub.cut(KOKORO, CHECKPOINT, after=cut_at)  # then the CDN answers 503 for that file
    first = cli("models", "prefetch", "--preset", "kokoro-82m", "--cache-dir", str(cache))
    assert first.code == 1, first.output
    assert CHECKPOINT in first.output and "rerun this command" in first.output
    assert "partial ones resume" in first.output
    # huggingface_hub writes whole chunks: what arrived before the cut, to the last chunk.
    kept = cut_at // constants.DOWNLOAD_CHUNK_SIZE * constants.DOWNLOAD_CHUNK_SIZE
    (partial,) = store.repo_folder(cache, KOKORO).glob("blobs/*.incomplete")
    assert partial.stat().st_size == kept > 0
    assert not (cache / store.LOCK_NAME).exists()

    hub.clear_faults()
    hub.reset_log()
    second = cli("models", "prefetch", "--preset", "kokoro-82m", "--cache-dir", str(cache))
    assert second.code == 0, second.output
    assert "resumed" in second.output
    (resumed,) = hub.downloads(CHECKPOINT)
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert resumed.sent == size - kept
    assert len(hub.downloads()) == 1  # everything else was already there
    assert not list(store.repo_folder(cache, KOKORO).glob("blobs/*.incomplete"))
    check = cli("models", "verify", "--full", "--cache-dir", str(cache))
    assert check.code == 0, check.output
    assert set(_locked(cache)) == {KOKORO}
