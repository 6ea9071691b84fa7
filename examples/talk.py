"""Talk to an airvoice server from Python: your microphone in, your speakers out.

    python examples/talk.py wss://<pod>-8000.proxy.runpod.net/ws   # token from AIRVOICE_TOKEN
    python examples/talk.py ws://127.0.0.1:8000/ws --token ... --full-duplex   # headphones on

Without a sound card (CI, a server, a quick check), play a WAV file as the microphone and record
what the bot says into another one; the session is the same, only the audio devices differ:

    python examples/talk.py ws://127.0.0.1:8000/ws --in question.wav --out reply.wav

Needs only the light install (`pip install airvoice`; `airvoice[audio]` for real devices).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from airvoice.client import (
    ArrayMicrophone,
    ClientError,
    ClockedPlayer,
    MemorySink,
    SoundDeviceMicrophone,
    SoundDevicePlayer,
    TurnLatency,
    VoiceClient,
    write_wav,
)
from airvoice.errors import AirvoiceError


def describe(latency: TurnLatency) -> str:
    """One line per turn: what you waited, split where it was spent (the parts add up)."""
    return latency.describe()


def make_client(args: argparse.Namespace) -> tuple[VoiceClient, MemorySink | None]:
    """A client on the sound devices, or on files when ``--in`` is given."""
    sink: MemorySink | None = None
    if args.audio_in:
        microphone = ArrayMicrophone.from_wav(args.audio_in)  # then silence, like a quiet room
        sink = MemorySink()
        player = ClockedPlayer(sink)  # plays in real time into memory instead of a speaker
    else:
        microphone = SoundDeviceMicrophone(args.input_device)
        player = SoundDevicePlayer(args.output_device)
    client = VoiceClient(
        args.url,
        args.token or os.environ.get("AIRVOICE_TOKEN"),
        microphone=microphone,
        player=player,
        voice=args.voice,
        duplex="aec" if args.echo_cancel else "full" if args.full_duplex else "half",
    )
    return client, sink


async def talk(args: argparse.Namespace) -> None:
    client, sink = make_client(args)
    replied = asyncio.Event()

    line: list[str] = []  # the bot's reply being printed

    client.on("connected", lambda: print("connected: speak when ready (Ctrl-C hangs up)"))
    client.on("interrupted", lambda: print(" (interrupted)"))
    client.on("latency", lambda latency: print(f"  [{describe(latency)}]"))

    @client.on("bot_text")
    def _text(text: str) -> None:  # the reply streams as text before and while it is spoken
        print(text if line else f"bot: {text.lstrip()}", end="", flush=True)
        line.append(text)

    @client.on("bot_stopped_speaking")
    def _done() -> None:
        if line:
            print()
            line.clear()
        if client.transcript and client.transcript[-1].strip():
            replied.set()

    await client.connect()
    try:
        if sink is None:
            await client.wait_closed()  # a live conversation: until Ctrl-C or the server ends it
            return
        waiter = asyncio.ensure_future(client.wait_closed())
        reply = asyncio.ensure_future(replied.wait())
        done, _ = await asyncio.wait(
            {waiter, reply}, timeout=args.timeout, return_when=asyncio.FIRST_COMPLETED
        )
        reply.cancel()
        if waiter in done:
            waiter.result()  # the session ended first: raise why
            raise ClientError("the server ended the session before replying")
        waiter.cancel()
        if not done:
            raise ClientError(f"no reply within {args.timeout:.0f} s")
        await asyncio.sleep(0.3)  # let the player drain the reply's tail
    finally:
        await client.close()
    audio = sink.audio()
    if args.audio_out:
        write_wav(args.audio_out, audio)
        print(f"reply audio: {args.audio_out} ({audio.size / 24000:.1f} s)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the server, e.g. wss://<pod>-8000.proxy.runpod.net/ws")
    parser.add_argument("--token", help="session token (default: AIRVOICE_TOKEN)")
    parser.add_argument("--voice", help="a Kokoro voice for this session, e.g. af_heart")
    parser.add_argument("--full-duplex", action="store_true", help="keep the mic open (headphones)")
    parser.add_argument(
        "--echo-cancel", action="store_true", help="cancel the bot's echo (airvoice[aec])"
    )
    parser.add_argument("--input-device", help="microphone, by name or index")
    parser.add_argument("--output-device", help="speaker, by name or index")
    parser.add_argument("--in", dest="audio_in", help="a WAV file to use as the microphone")
    parser.add_argument("--out", dest="audio_out", help="with --in: write the reply to this WAV")
    parser.add_argument("--timeout", type=float, default=60.0, help="with --in: seconds to wait")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        asyncio.run(talk(args))
    except KeyboardInterrupt:
        print("hung up")
    except AirvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
