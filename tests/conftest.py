"""Fixtures shared by every test: no test reaches beyond this machine."""

from __future__ import annotations

import os

import pytest

from airvoice.testing.network import block_network

# Model libraries must never try the hub in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def no_network():
    """Refuse every non-loopback connection; yields the refused targets."""
    with block_network() as refused:
        yield refused
