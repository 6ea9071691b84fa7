"""``airvoice demo``: one spoken turn through the engines, offline, on models built on the spot."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from airvoice.client.audio import read_wav, write_wav
from airvoice.errors import AirvoiceError

console = Console()


def demo(
    audio_in: Annotated[
        Path | None,
        typer.Option(
            "--in", exists=True, dir_okay=False, help="A WAV file to use as the user's turn."
        ),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, max=20, help="How many turns to run.")] = 2,
    audio_out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="Save the last spoken reply (WAV, 24 kHz)."),
    ] = None,
) -> None:
    """Run spoken turns through Ultravox on a tiny random model, and speak each reply with the
    real Kokoro-82M when its PyPI build is installed (no GPU, no download).

    The Ultravox model is random, so its words are nonsense: this shows the engines working end
    to end (audio in, streamed text out, memory, KV reuse, speech out) and what they cost here.
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

    question = None
    if audio_in is not None:
        try:
            question = read_wav(audio_in)
        except AirvoiceError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

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
        kokoro = _offline_kokoro(Path(tmp))

        async def run() -> None:
            for turn in range(turns):
                if question is not None:
                    samples, rate = question
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
                    f"({stats.reused_tokens} reused from the KV cache)",
                    soft_wrap=True,
                )
                if kokoro is not None and stream.text.strip():
                    spoke = time.perf_counter()
                    pcm = kokoro.synthesize(stream.text, _DEMO_VOICE)
                    seconds = pcm.size / kokoro.sample_rate
                    console.print(
                        f"  spoken by Kokoro-82M: {seconds:.1f} s of audio in "
                        f"{time.perf_counter() - spoke:.2f} s"
                    )
                    if audio_out is not None and pcm.size:
                        write_wav(audio_out, pcm, kokoro.sample_rate)

        try:
            asyncio.run(run())
        finally:
            engine.close()


_DEMO_VOICE = "jm_kumo"


def _offline_kokoro(folder: Path) -> object | None:
    """The real int8 Kokoro-82M from its PyPI parts (the dev extra), or None when absent."""
    try:
        from airvoice.engines.kokoro import KokoroEngine
        from airvoice.testing.kokoro import build_kokoro_onnx
        from airvoice.testing.packaged import MissingTestModelError
    except ImportError:
        return None
    try:
        return KokoroEngine(build_kokoro_onnx(folder / "kokoro"), backend="onnx", device="cpu")
    except MissingTestModelError:
        console.print("(Kokoro's PyPI build is not installed: replies are not spoken)")
        return None
