"""A small synchronous wrapper for scripts: one spoken turn in, the bot's reply out."""

from __future__ import annotations

import asyncio

import numpy as np

from airvoice.client.client import Reply, VoiceClient


def ask(
    url: str,
    audio: np.ndarray,
    sample_rate: int = 16_000,
    *,
    token: str | None = None,
    voice: str | None = None,
    speed: float | None = None,
    timeout: float = 60.0,
) -> Reply:
    """Connect, speak ``audio`` as one turn, return the reply (text, 24 kHz audio, latency)."""

    async def run() -> Reply:
        client = VoiceClient(url, token, voice=voice, speed=speed, reconnect=False)
        await client.connect()
        try:
            return await client.ask(audio, sample_rate, timeout)
        finally:
            await client.close()

    return asyncio.run(run())
