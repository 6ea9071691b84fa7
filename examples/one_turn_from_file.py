"""One spoken turn from a WAV file, synchronously: the simplest way to script airvoice.

    python examples/one_turn_from_file.py ws://127.0.0.1:8000/ws question.wav reply.wav
    export AIRVOICE_TOKEN=...
    python examples/one_turn_from_file.py wss://<pod>-8000.proxy.runpod.net/ws q.wav

`airvoice.client.ask` connects, speaks the file as the user's turn, waits for the whole reply
and hangs up: no event loop to manage. Needs only the light install (`pip install airvoice`).
"""

from __future__ import annotations

import os
import sys

from airvoice.client import ask, read_wav, write_wav
from airvoice.errors import AirvoiceError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    url, question = args[0], args[1]
    try:
        samples, rate = read_wav(question)  # any rate, mono or stereo 16-bit PCM
        reply = ask(url, samples, rate, token=os.environ.get("AIRVOICE_TOKEN"), timeout=60)
    except AirvoiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    print(f"bot: {reply.text.strip()}")
    if reply.latency is not None:
        print(f"latency: {reply.latency.describe()}")  # the parts add up to the whole
    if len(args) == 3:
        write_wav(args[2], reply.audio)  # 24 kHz mono PCM16
        print(f"reply audio: {args[2]} ({reply.audio.size / 24000:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
