"""Instant stand-ins for the engines: they answer at once, so a benchmark sees only the server.

They have the duck-typed surface the pipeline uses (``UltravoxEngine.respond`` and
``KokoroEngine.stream``), with a fixed reply and a fixed tone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from airvoice.engines.ultravox import Conversation, GenerationSettings, ReplyStats
from airvoice.engines.ultravox.backends.base import health_block


class InstantReply:
    """A reply stream that yields its deltas at once."""

    def __init__(self, deltas: list[str]) -> None:
        self._deltas = list(deltas)
        self.text = ""
        self.stats = ReplyStats(generated_tokens=len(deltas), finish_reason="stop")
        self.stats.first_token_at = self.stats.submitted_at = 0.0
        self._done = asyncio.Event()

    def __aiter__(self) -> InstantReply:
        return self

    async def __anext__(self) -> str:
        if not self._deltas:
            self._done.set()
            raise StopAsyncIteration
        delta = self._deltas.pop(0)
        self.text += delta
        return delta

    def cancel(self) -> None:
        self._deltas.clear()
        self._done.set()

    async def wait_finished(self) -> ReplyStats:
        await self._done.wait()
        return self.stats


class InstantUltravox:
    """Answers every turn with the same text, at once."""

    def __init__(self, reply: str = "Sure. Here is a short answer.") -> None:
        self.reply = reply
        self.settings = GenerationSettings(temperature=0.0)
        self.pending_replies = 0

    def new_conversation(self, system_prompt: str, max_context_tokens: int | None = None) -> Any:
        return Conversation(system_prompt, max_context_tokens or 4096)

    def respond(self, conversation: Conversation, audio: np.ndarray, sample_rate: int) -> Any:
        return InstantReply([w + " " for w in self.reply.split()])

    def health(self) -> dict[str, Any]:
        """The ``engine`` block of ``/health``, shaped as the real engines' (no KV cache here)."""
        return health_block("instant", self.pending_replies)


class _AnyVoice:
    def get(self, name: str) -> str:
        return name


class InstantKokoro:
    """Speaks every sentence as a fixed-length 24 kHz tone, at once."""

    sample_rate = 24_000

    def __init__(self, seconds_per_sentence: float = 1.0) -> None:
        t = np.arange(int(self.sample_rate * seconds_per_sentence)) / self.sample_rate
        self.pcm = (3000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()
        self.voices = _AnyVoice()

    def stream(self, text: str, voice: str, speed: float = 1.0) -> AsyncIterator[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            yield self.pcm

        return chunks()
