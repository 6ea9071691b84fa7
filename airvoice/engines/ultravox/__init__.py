"""Ultravox, our own implementation: a Whisper encoder and projector feeding a Llama.

Loads hub checkpoints from local files only (no remote code, no network) and streams replies
with its own decoding loop. See :class:`UltravoxEngine`.
"""

from airvoice.engines.ultravox.chat_template import AUDIO_PLACEHOLDER, ChatTemplate
from airvoice.engines.ultravox.config import SAMPLE_RATE, UltravoxConfig
from airvoice.engines.ultravox.conversation import DEFAULT_SYSTEM_PROMPT, Conversation
from airvoice.engines.ultravox.engine import (
    GenerationSettings,
    ReplyStats,
    ReplyStream,
    UltravoxEngine,
)
from airvoice.engines.ultravox.loading import UltravoxFiles, load_model, locate_files
from airvoice.engines.ultravox.processor import AudioProcessor, audio_token_counts

__all__ = [
    "AUDIO_PLACEHOLDER",
    "DEFAULT_SYSTEM_PROMPT",
    "SAMPLE_RATE",
    "AudioProcessor",
    "ChatTemplate",
    "Conversation",
    "GenerationSettings",
    "ReplyStats",
    "ReplyStream",
    "UltravoxConfig",
    "UltravoxEngine",
    "UltravoxFiles",
    "audio_token_counts",
    "load_model",
    "locate_files",
]
