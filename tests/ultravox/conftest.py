"""Tiny random Ultravox models in the hub layout, built once per test session."""

from __future__ import annotations

import pytest

from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
from airvoice.testing.ultravox import TinyUltravox, build_tiny_ultravox


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> TinyUltravox:
    return build_tiny_ultravox(tmp_path_factory.mktemp("tiny-ultravox"))


@pytest.fixture(scope="session")
def engine(tiny_model) -> UltravoxEngine:
    """An engine on the tiny model; seeded sampling makes replies reproducible."""
    settings = GenerationSettings(temperature=1.0, top_p=1.0, seed=1234, max_new_tokens=24)
    engine = UltravoxEngine.load(
        tiny_model.ultravox_dir, tiny_model.text_model_dir, settings=settings
    )
    yield engine
    engine.close()
