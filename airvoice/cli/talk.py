"""``airvoice talk`` (a live conversation) and ``airvoice say`` (one turn from a file)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console()
errors = Console(stderr=True)

TokenOption = Annotated[
    str | None,
    typer.Option(help="The session token the server printed (default: AIRVOICE_TOKEN)."),
]
VoiceOption = Annotated[str | None, typer.Option(help="Voice for this session.")]
SpeedOption = Annotated[
    float | None, typer.Option(min=0.5, max=2.0, help="Speaking speed for this session.")
]


def _token(token: str | None) -> str | None:
    return token or os.environ.get("AIRVOICE_TOKEN")


def _fail(exc: Exception) -> typer.Exit:
    errors.print(Text("error: ", style="red") + Text(str(exc)))
    return typer.Exit(getattr(exc, "exit_code", 1))


def talk(
    url: Annotated[
        str | None, typer.Argument(help="The server, e.g. wss://<pod>-8000.proxy.runpod.net/ws")
    ] = None,
    token: TokenOption = None,
    voice: VoiceOption = None,
    speed: SpeedOption = None,
    input_device: Annotated[str | None, typer.Option(help="Microphone, by name or index.")] = None,
    output_device: Annotated[str | None, typer.Option(help="Speaker, by name or index.")] = None,
    full_duplex: Annotated[
        bool, typer.Option(help="Keep the mic open while the bot speaks (use headphones).")
    ] = False,
    echo_cancel: Annotated[
        bool,
        typer.Option(
            help="Cancel the bot's echo and keep the mic open (pip install 'airvoice[aec]')."
        ),
    ] = False,
    list_devices: Annotated[bool, typer.Option(help="List sound devices and exit.")] = False,
) -> None:
    """Talk with the assistant: microphone in, speaker out, transcript and latency per turn.

    Without headphones the microphone is closed while the bot speaks (half duplex), so that it
    does not hear itself. Ctrl-C hangs up.
    """
    from airvoice.client import SoundDeviceMicrophone, SoundDevicePlayer, VoiceClient
    from airvoice.client import list_devices as query_devices
    from airvoice.client.audio import check_devices
    from airvoice.errors import AirvoiceError

    if list_devices:
        try:
            devices = query_devices()
        except AirvoiceError as exc:
            raise _fail(exc) from None
        if not devices:
            console.print("no sound devices: PortAudio finds no microphone and no speaker here")
            return
        table = Table("index", "name", "inputs", "outputs", "rate")
        for d in devices:
            table.add_row(
                str(d["index"]),
                d["name"],
                str(d["inputs"]),
                str(d["outputs"]),
                f"{d['default_rate']:.0f}",
            )
        console.print(table)
        return
    if url is None:
        errors.print("[red]error:[/red] give the server URL, e.g. airvoice talk wss://host/ws")
        raise typer.Exit(2)

    try:
        check_devices(input_device, output_device)  # before connecting: can we hear and speak?
        client = VoiceClient(
            url,
            _token(token),
            microphone=SoundDeviceMicrophone(input_device),
            player=SoundDevicePlayer(output_device),
            voice=voice,
            speed=speed,
            duplex="aec" if echo_cancel else "full" if full_duplex else "half",
        )
    except AirvoiceError as exc:
        raise _fail(exc) from None
    client.on(
        "connected",
        lambda: console.print("[green]connected[/green] - speak when ready (Ctrl-C hangs up)"),
    )
    client.on("user_started_speaking", lambda: console.print("[dim]you are speaking...[/dim]"))
    client.on("bot_started_speaking", lambda: console.print("[bold]bot:[/bold] ", end=""))
    client.on("bot_text", lambda text: console.print(text, end="", markup=False, highlight=False))
    client.on("bot_stopped_speaking", lambda: console.print())
    client.on("interrupted", lambda: console.print("[yellow] (interrupted)[/yellow]"))
    client.on("latency", lambda lat: console.print(f"[dim]{lat.describe()}[/dim]"))
    client.on(
        "reconnecting",
        lambda n: console.print(f"[yellow]connection lost, reconnecting ({n})...[/yellow]"),
    )

    async def run() -> None:
        await client.connect()
        try:
            await client.wait_closed()
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        console.print("hung up")
    except AirvoiceError as exc:
        raise _fail(exc) from None


def say(
    url: Annotated[str, typer.Argument(help="The server's ws:// or wss:// URL.")],
    audio_in: Annotated[
        Path, typer.Option("--in", exists=True, dir_okay=False, help="The question, a WAV file.")
    ],
    audio_out: Annotated[
        Path | None,
        typer.Option("--out", dir_okay=False, help="Where to write the reply (WAV, 24 kHz)."),
    ] = None,
    token: TokenOption = None,
    voice: VoiceOption = None,
    speed: SpeedOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the reply.")] = 60.0,
) -> None:
    """One turn from a file: send the question, print the bot's text and latency, save its voice."""
    from airvoice.client import ask, read_wav, write_wav
    from airvoice.errors import AirvoiceError

    try:
        samples, rate = read_wav(audio_in)
        reply = ask(
            url, samples, rate, token=_token(token), voice=voice, speed=speed, timeout=timeout
        )
    except AirvoiceError as exc:
        raise _fail(exc) from None
    console.print(reply.text.strip(), markup=False, highlight=False)
    if reply.latency is not None:
        console.print(reply.latency.describe(), style="dim")
    if audio_out is not None:
        write_wav(audio_out, reply.audio)
        console.print(f"reply audio: {audio_out} ({reply.audio.size / 24000:.1f} s)", style="dim")
