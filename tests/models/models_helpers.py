"""Names the model tests share (a module of its own: conftest is not importable)."""

from __future__ import annotations

ULTRAVOX = "fixie-ai/ultravox-v0_5-llama-3_2-1b"
TEXT = "meta-llama/Llama-3.2-1B-Instruct"
KOKORO = "hexgrad/Kokoro-82M"
TOKEN = "hf_TestSecretToken0123456789abcdef"

# The CLI under the network guard: only loopback (the fake hub) can be reached.
RUNNER = (
    "import sys\n"
    "from airvoice.testing.network import block_network\n"
    "from airvoice.cli import main\n"
    "sys.argv = ['airvoice', *sys.argv[1:]]\n"
    "with block_network():\n"
    "    main()\n"
)
