"""Run ``airvoice demo`` as a user does (its own process, loopback only) and read its output."""

from __future__ import annotations

import re
import selectors
import subprocess
import time
from pathlib import Path

LATENCY = re.compile(
    r"latency: (\d+) ms from your last word to the bot's voice = turn end \+ network (-?\d+) "
    r"\+ server (\d+) \(Ultravox (\d+) \+ Kokoro (\d+) \+ sending (\d+)\) "
    r"\+ playback buffer (\d+)"
)


class DemoProcess:
    """A running demo: its output so far, line by line."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def read_until(self, pattern: str, timeout: float) -> re.Match[str]:
        """Read stdout until a line matches ``pattern``; fail after ``timeout`` seconds."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if not selector.select(timeout=min(1.0, deadline - time.monotonic())):
                    continue
                line = self.process.stdout.readline()
                if not line:
                    break  # the demo ended
                self.lines.append(line.rstrip("\n"))
                found = re.search(pattern, line)
                if found:
                    return found
        self.process.kill()
        _, err = self.process.communicate(timeout=30)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.output}\nstderr:\n{err}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for the end: exit code, the whole stdout, stderr."""
        out, err = self.process.communicate(timeout=timeout)
        self.lines.extend(out.splitlines())
        return self.process.returncode, self.output, err

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


def check_round_trip(output: str) -> None:
    """What one demo turn prints: the reply, and a latency line whose parts add up."""
    assert output.count("tiny random stand-in") == 1, output
    bot = [line for line in output.splitlines() if line.startswith("bot: ")]
    assert bot and bot[0][len("bot: ") :].strip(), output
    found = LATENCY.search(output)
    assert found, output
    whole, turn_end, server, llm, tts, send, buffer = (int(n) for n in found.groups())
    assert whole == turn_end + server + buffer and server == llm + tts + send, found.group(0)
    # No part is negative. The turn-end part may be 0: when the client counted a voiced frame
    # after the server's end of turn, TurnLatency.fit_to_server starts the whole there.
    assert turn_end >= 0 and buffer >= 0 and whole >= server, found.group(0)
    assert "the server's own breakdown: turn_end_to_first_audio_ms" in output
