"""The Pipecat glue: Ultravox and Kokoro as Pipecat services, and ``build_pipeline``."""

from airvoice.pipeline.builder import (
    AirvoicePipeline,
    Engines,
    SessionSettings,
    TurnSettings,
    build_pipeline,
)
from airvoice.pipeline.kokoro_service import KokoroTTSService
from airvoice.pipeline.ultravox_service import UltravoxWithContextService

__all__ = [
    "AirvoicePipeline",
    "Engines",
    "KokoroTTSService",
    "SessionSettings",
    "TurnSettings",
    "UltravoxWithContextService",
    "build_pipeline",
]
