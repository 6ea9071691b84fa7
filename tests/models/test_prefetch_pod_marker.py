"""``airvoice models prefetch --then-idle``: what the prefetch pod runs under the image's
``airvoice`` entrypoint; it prints the marker the deploy CLI watches for, then idles."""

from __future__ import annotations

from typer.testing import CliRunner

from airvoice.cli import app
from airvoice.cli import models as models_cli
from airvoice.cloud.specs import PREFETCH_FAILED, PREFETCH_OK


def _idle(monkeypatch) -> list[bool]:
    idled: list[bool] = []
    monkeypatch.setattr(models_cli, "idle_forever", lambda: idled.append(True))
    return idled


def test_a_failed_prefetch_prints_the_failure_marker_then_idles(monkeypatch, tmp_path):
    idled = _idle(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # prefetch refuses to run offline: a failure
    args = ["models", "prefetch", "--preset", "ultravox-1b", "--cache-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--then-idle"])
    assert result.exit_code == 0 and idled == [True]
    lines = result.output.strip().splitlines()
    assert lines[-1] == PREFETCH_FAILED and PREFETCH_OK not in result.output
    assert "prefetch needs the network" in result.output


def test_a_successful_prefetch_prints_the_ok_marker_then_idles(monkeypatch, capsys):
    idled = _idle(monkeypatch)
    models_cli._then_idle(lambda: None)
    assert capsys.readouterr().out.strip() == PREFETCH_OK and idled == [True]


def test_an_unexpected_error_counts_as_a_failure(monkeypatch, capsys):
    idled = _idle(monkeypatch)

    def boom() -> None:
        raise RuntimeError("disk full")

    models_cli._then_idle(boom)
    assert capsys.readouterr().out.strip() == PREFETCH_FAILED and idled == [True]
