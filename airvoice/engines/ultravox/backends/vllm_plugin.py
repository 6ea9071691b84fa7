"""The ``vllm.general_plugins`` entry point: registers our Ultravox model class with vLLM.

vLLM loads general plugins in every process it runs (front end, engine core, workers), so the
architecture name below resolves wherever the model or its processor is built. The class itself
is registered (not its import path), which spares vLLM a subprocess that would inspect it.
Registering twice is a no-op.
"""

from __future__ import annotations

ARCHITECTURE = "AirvoiceUltravoxModel"
"""The architecture name our engine selects with ``hf_overrides={"architectures": [...]}``."""


def register() -> None:
    """Register :data:`ARCHITECTURE` in vLLM's model registry (idempotent)."""
    from vllm import ModelRegistry

    if ARCHITECTURE not in ModelRegistry.get_supported_archs():
        from airvoice.engines.ultravox.backends.vllm_model import AirvoiceUltravoxModel

        ModelRegistry.register_model(ARCHITECTURE, AirvoiceUltravoxModel)
