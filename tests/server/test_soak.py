"""The soak benchmark, scaled down: a server that comes back after honest and hostile use."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airvoice.testing.server import TOKEN

SOAK = Path(__file__).parents[2] / "bench" / "soak.py"


def test_short_soak_comes_back_to_baseline_and_logs_no_token(tmp_path):
    spec = importlib.util.spec_from_file_location("soak", SOAK)
    assert spec is not None and spec.loader is not None
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    log = tmp_path / "server.log"
    # The warm-up reaches the working set (about a minute of the mix, see bench/soak.py).
    args = ["--minutes", "0.4", "--warmup", "60", "--sessions", "2"]
    result = soak.main([*args, "--root", str(tmp_path), "--log", str(log)])
    base, after = result["baseline_after_warmup"], result["after_soak"]
    assert result["turns_sent"] >= 2 and result["turns_answered"] == result["turns_sent"]
    assert not result["session_errors"]
    assert result["probes"] >= 10 and result["false_refusals"] == 0
    assert result["rss_after_over_warmup"] <= 1.10, result["timeline"]
    assert after["threads"] <= base["threads"] and after["fds"] <= base["fds"]
    assert after["tasks"] <= base["tasks"]
    # Items 1 and 7: no token (nor a near miss) in the log, no flooded payload.
    text = log.read_text(encoding="utf-8", errors="replace")
    assert TOKEN[:-1] not in text
    assert "token=***" in text  # the requests were logged, redacted
    assert result["hostile"]["megabyte_messages"] >= 3
    assert len(text.encode()) < 400_000, "1 MB messages were logged at full length"
    assert result["meets_target"]
