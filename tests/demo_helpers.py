"""Run ``airvoice demo`` as a user does (its own process, loopback only) and read its output."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from pathlib import Path

LATENCY = re.compile(
    r"latency: (\d+) ms from your last word to the bot's voice = turn end \+ network (-?\d+) "
    r"\+ server (\d+) \(Ultravox (\d+) \+ Kokoro (\d+) \+ sending (\d+)\) "
    r"\+ playback buffer (\d+)"
)


class DemoProcess:
    """A running demo: its output so far, line by line.

    Threads read stdout and stderr as they come. (Selecting on the pipe and calling
    ``readline`` lost lines: one read can take in two lines, ``readline`` returns the first,
    and the second waits in the buffer while ``select`` reports nothing more to read. A CI run
    waited 400 s that way for a line the demo had printed. Reading stderr only at the end could
    also fill its pipe and stall the demo.)
    """

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
        self._stdout: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout.put(line.rstrip("\n"))
        self._stdout.put(None)  # the demo closed its stdout

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        self._stderr.extend(self.process.stderr)

    def read_until(self, pattern: str, timeout: float) -> re.Match[str]:
        """Read stdout until a line matches ``pattern``; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._stdout.get(timeout=min(1.0, left))
            except queue.Empty:
                continue
            if line is None:
                break  # the demo ended
            self.lines.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        self.process.kill()
        _, err = self.finish(timeout=30)
        raise AssertionError(f"no line matching {pattern!r}:\n{self.output}\nstderr:\n{err}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for the end: exit code, the whole stdout, stderr."""
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        while True:
            try:
                line = self._stdout.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code, self.output, "".join(self._stderr)

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
