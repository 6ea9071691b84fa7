"""Fixtures shared by every test: no test reaches beyond this machine."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airvoice.testing.network import block_network

# Model libraries must never try the hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# RunPod's OpenAPI v2 document is RunPod's and is not committed here: the project's tests read
# the copy the project keeps beside its checkout (the only data a test may read from outside).
os.environ.setdefault(
    "AIRVOICE_RUNPOD_OPENAPI",
    str(Path(__file__).resolve().parents[2] / "shared" / "runpod" / "openapi-v2.json"),
)


@pytest.fixture
def no_network():
    """Refuse every non-loopback connection; yields the refused targets."""
    with block_network() as refused:
        yield refused


@pytest.fixture(scope="session")
def engines(tmp_path_factory):
    """Tiny Ultravox + real int8 Kokoro, loaded once for every server and client test."""
    from airvoice.testing.server import build_offline_engines

    engines = build_offline_engines(tmp_path_factory.mktemp("offline-engines"))
    yield engines
    engines.ultravox.close()


@pytest.fixture(scope="session")
def speech16(engines):
    """A spoken question (Kokoro's voice) as 16 kHz int16."""
    from airvoice.testing.server import spoken

    return spoken(engines)
