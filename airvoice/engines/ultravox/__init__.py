"""Ultravox: a Whisper encoder and projector feeding a Llama, heard and answered in text.

Loads hub checkpoints from local files only (no remote code, no network). Two backends share
the conversation, chat template and audio processing: :class:`UltravoxEngine` (our own model
and decoding loop) and, on GPUs, the vLLM engine
(``airvoice.engines.ultravox.backends.vllm_engine``, imported only when vLLM is wanted).
"""

from airvoice.engines.ultravox.backends.base import ReplyStream
from airvoice.engines.ultravox.backends.torch_engine import UltravoxEngine
from airvoice.engines.ultravox.chat_template import AUDIO_PLACEHOLDER, ChatTemplate
from airvoice.engines.ultravox.config import SAMPLE_RATE, UltravoxConfig
from airvoice.engines.ultravox.conversation import DEFAULT_SYSTEM_PROMPT, Conversation
from airvoice.engines.ultravox.generation import GenerationSettings, ReplyStats
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
