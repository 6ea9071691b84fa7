"""``airvoice demo``: one spoken turn through the engines, offline, on models built on the spot."""

from __future__ import annotations

import asyncio
import tempfile
import time
import wave
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

console = Console()


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Samples (float32, mono) and rate of a 16-bit PCM WAV file."""
    try:
        with wave.open(str(path), "rb") as f:
            if f.getsampwidth() != 2:
                raise typer.BadParameter(f"{path} is not 16-bit PCM; convert it with sox or ffmpeg")
            frames = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
            channels, rate = f.getnchannels(), f.getframerate()
    except (wave.Error, EOFError) as exc:
        raise typer.BadParameter(f"{path} is not a readable WAV file ({exc})") from exc
    samples = frames.reshape(-1, channels).mean(axis=1) / 32768.0
    return samples.astype(np.float32), rate


def demo(
    audio_in: Annotated[
        Path | None,
        typer.Option(
            "--in", exists=True, dir_okay=False, help="A WAV file to use as the user's turn."
        ),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, max=20, help="How many turns to run.")] = 2,
) -> None:
    """Run spoken turns through Ultravox on a tiny random model (no GPU, no download).

    The model is random, so its words are nonsense: this shows the engine working end to end
    (audio in, streamed text out, conversation memory, KV reuse) and what it costs here.
    """
    try:
        from airvoice.engines.ultravox import GenerationSettings, UltravoxEngine
        from airvoice.testing.audio import speechlike
        from airvoice.testing.ultravox import build_tiny_ultravox
    except ImportError as exc:
        console.print(
            f"[red]The engines are not installed ({exc.name} is missing).[/red] "
            "Install them with: pip install 'airvoice[engines]'"
        )
        raise typer.Exit(1) from exc

    with tempfile.TemporaryDirectory(prefix="airvoice-demo-") as tmp:
        started = time.perf_counter()
        built = build_tiny_ultravox(Path(tmp))
        settings = GenerationSettings(temperature=0.8, max_new_tokens=24)
        engine = UltravoxEngine.load(built.ultravox_dir, built.text_model_dir, settings=settings)
        console.print(
            f"built and loaded a tiny Ultravox in {time.perf_counter() - started:.2f} s "
            f"on {engine.device} ({engine.dtype})"
        )
        conversation = engine.new_conversation()

        async def run() -> None:
            for turn in range(turns):
                if audio_in is not None:
                    samples, rate = read_wav(audio_in)
                else:
                    samples, rate = speechlike(1.0 + turn % 3, seed=turn), 16000
                stream = engine.respond(conversation, samples, rate)
                console.print(
                    f"[bold]turn {turn + 1}[/bold] ({samples.size / rate:.1f} s): ", end=""
                )
                async for delta in stream:
                    console.print(delta, end="", markup=False, highlight=False)
                stats = await stream.wait_finished()
                console.print(
                    f"\n  time to first token {1000 * (stats.time_to_first_token or 0):.1f} ms, "
                    f"{stats.generated_tokens} tokens, prompt {stats.prompt_tokens} "
                    f"({stats.reused_tokens} reused from the KV cache)"
                )

        try:
            asyncio.run(run())
        finally:
            engine.close()
