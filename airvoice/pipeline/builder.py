"""``build_pipeline``: the airvoice voice pipeline, ready to embed in a Pipecat app.

```
transport.input ─► user aggregator (Silero VAD + Smart Turn v3) ─► Ultravox ─► Kokoro
                ─► transport.output ─► assistant aggregator (what was actually heard)
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipecat.audio.turn.smart_turn.base_smart_turn import SmartTurnParams
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMContextAggregatorPair,
    LLMUserAggregator,
    LLMUserAggregatorParams,
)
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_start import VADUserTurnStartStrategy
from pipecat.turns.user_stop import (
    SpeechTimeoutUserTurnStopStrategy,
    TurnAnalyzerUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from airvoice.engines.kokoro import KokoroEngine
from airvoice.engines.ultravox import DEFAULT_SYSTEM_PROMPT, UltravoxEngine
from airvoice.pipeline.kokoro_service import KokoroTTSService
from airvoice.pipeline.ultravox_service import UltravoxWithContextService

INPUT_SAMPLE_RATE = 16_000
OUTPUT_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class TurnSettings:
    """When the user's turn starts and ends (Silero VAD, then Smart Turn v3)."""

    vad_confidence: float = 0.7
    vad_start_seconds: float = 0.2
    vad_stop_seconds: float = 0.2
    vad_min_volume: float = 0.6
    smart_turn: bool = True
    smart_turn_max_silence_seconds: float = 3.0
    """With Smart Turn: silence after which a turn ends even if it sounds unfinished."""
    silence_timeout_seconds: float = 0.6
    """Without Smart Turn: silence that ends the turn."""
    pre_speech_seconds: float = 0.5
    """Audio kept from before the VAD noticed speech, so the first syllable is not lost."""
    interruptions: bool = True
    """The user speaking over the bot stops the bot."""


@dataclass(frozen=True)
class SessionSettings:
    """What one session can choose: voice, speed, system prompt, turn-taking."""

    voice: str = "af_heart"
    speed: float = 1.0
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_context_tokens: int | None = None
    turns: TurnSettings = field(default_factory=TurnSettings)


@dataclass(frozen=True)
class Engines:
    """The models, loaded once per process and shared by every session."""

    ultravox: UltravoxEngine
    kokoro: KokoroEngine


@dataclass
class AirvoicePipeline:
    """The pieces of one session's pipeline."""

    pipeline: Pipeline
    params: PipelineParams
    llm: UltravoxWithContextService
    tts: KokoroTTSService
    context: LLMContext
    user_aggregator: LLMUserAggregator
    assistant_aggregator: LLMAssistantAggregator


def user_turn_params(turns: TurnSettings) -> LLMUserAggregatorParams:
    """Aggregator parameters with Silero VAD and Smart Turn v3 (both ship in the pipecat wheel)."""
    vad = SileroVADAnalyzer(
        params=VADParams(
            confidence=turns.vad_confidence,
            start_secs=turns.vad_start_seconds,
            stop_secs=turns.vad_stop_seconds,
            min_volume=turns.vad_min_volume,
        )
    )
    if turns.smart_turn:
        analyzer = LocalSmartTurnAnalyzerV3(
            params=SmartTurnParams(stop_secs=turns.smart_turn_max_silence_seconds)
        )
        stop: Any = TurnAnalyzerUserTurnStopStrategy(
            turn_analyzer=analyzer, wait_for_transcript=False
        )
    else:
        stop = SpeechTimeoutUserTurnStopStrategy(
            user_speech_timeout=turns.silence_timeout_seconds, wait_for_transcript=False
        )
    strategies = UserTurnStrategies(
        start=[VADUserTurnStartStrategy(enable_interruptions=turns.interruptions)], stop=[stop]
    )
    return LLMUserAggregatorParams(vad_analyzer=vad, user_turn_strategies=strategies)


def build_pipeline(
    settings: SessionSettings,
    transport: BaseTransport,
    engines: Engines,
    **service_options: Any,
) -> AirvoicePipeline:
    """One session's pipeline over ``transport``, sharing the loaded ``engines``.

    Run it with a ``PipelineWorker(result.pipeline, params=result.params)``. Extra keyword
    arguments go to :class:`UltravoxWithContextService` (e.g. ``on_reply``).
    """
    conversation = engines.ultravox.new_conversation(
        settings.system_prompt, settings.max_context_tokens
    )
    context = LLMContext(messages=[{"role": "system", "content": settings.system_prompt}])
    user, assistant = LLMContextAggregatorPair(
        context, user_params=user_turn_params(settings.turns), realtime_service_mode=True
    )
    llm = UltravoxWithContextService(
        engines.ultravox,
        conversation,
        sample_rate=INPUT_SAMPLE_RATE,
        pre_speech_seconds=settings.turns.vad_start_seconds + settings.turns.pre_speech_seconds,
        **service_options,
    )
    tts = KokoroTTSService(engines.kokoro, settings.voice, settings.speed)

    @assistant.event_handler("on_assistant_turn_stopped")
    async def _heard(_aggregator: Any, message: Any) -> None:
        await llm.record_heard(message.content or "", bool(message.interrupted))

    pipeline = Pipeline([transport.input(), user, llm, tts, transport.output(), assistant])
    params = PipelineParams(
        audio_in_sample_rate=INPUT_SAMPLE_RATE,
        audio_out_sample_rate=OUTPUT_SAMPLE_RATE,
        enable_metrics=True,
    )
    return AirvoicePipeline(pipeline, params, llm, tts, context, user, assistant)
