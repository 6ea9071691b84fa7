"""One turn's wait, as the user lived it, split into parts that add up to the whole.

The whole runs on the client's clock, from the user's last voiced frame leaving the microphone
to the first bot audio handed to the speaker. It splits into three consecutive parts:

- ``turn_end_ms``: from the last word to the server's end-of-turn decision (the silence it waits
  for, or Smart Turn's verdict), plus the network both ways. Client and server clocks cannot be
  compared, so this part is what the whole leaves once the other two are taken away;
- ``server_ms``: on the server's clock, from its end-of-turn decision to its first bot audio
  sent. The server splits it into Ultravox (end of turn to first text), Kokoro (first text to
  first audio) and sending (first audio to written on the socket);
- ``buffer_ms``: on the client's clock, from the first bot audio arriving to it being played
  (the jitter buffer's prebuffer and the player's tick).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: The server's breakdown (its ``turn-latency`` message): key, and what the figure measures.
SERVER_TOTAL = "turn_end_to_first_audio_ms"
SERVER_PARTS = (
    ("llm_first_text_ms", "Ultravox"),
    ("tts_first_audio_ms", "Kokoro"),
    ("send_first_audio_ms", "sending"),
)


@dataclass
class TurnLatency:
    """One turn as the user lived it (client clock), and the server's own breakdown."""

    user_to_speaker_ms: float
    """The whole: from the user's last voiced frame leaving the mic to the first bot audio
    played."""
    server: dict[str, float] = field(default_factory=dict)
    """The server's ``turn-latency`` message: ``turn_end_to_first_audio_ms`` and its parts
    ``llm_first_text_ms`` + ``tts_first_audio_ms`` + ``send_first_audio_ms``."""
    buffer_ms: float | None = None
    """From the first bot audio arriving at the client to it being played."""

    @property
    def server_ms(self) -> float | None:
        """From the server's end-of-turn decision to its first bot audio sent (server clock)."""
        value = self.server.get(SERVER_TOTAL)
        return float(value) if value is not None else None

    @property
    def turn_end_ms(self) -> float | None:
        """From the last word to the server's end-of-turn decision, plus the network both ways:
        the whole minus the server's part and the client's buffer."""
        if self.server_ms is None:
            return None
        return self.user_to_speaker_ms - self.server_ms - (self.buffer_ms or 0.0)

    def fit_to_server(self) -> None:
        """Keep the parts consistent when the client counted a voiced frame the server had
        already judged to be after the turn (noise above the voice threshold): the whole then
        starts at the server's end of turn instead, and the turn-end part is zero."""
        rest = self.turn_end_ms
        if rest is not None and rest < 0:
            self.user_to_speaker_ms -= rest

    def describe(self) -> str:
        """One line whose figures add up: whole = turn end + server + buffer, and the server
        part = Ultravox + Kokoro + sending (each rounded to whole milliseconds)."""
        whole = round(self.user_to_speaker_ms)
        if self.server_ms is None:
            return _head(whole)
        parts = [(name, self.server.get(key)) for key, name in SERVER_PARTS]
        known = [(name, round(value)) for name, value in parts if value is not None]
        complete = len(known) == len(parts)
        server = sum(v for _, v in known) if complete else round(self.server_ms)
        buffer = round(self.buffer_ms or 0.0)
        # Each part is rounded on its own, so their sum can pass the rounded whole by a
        # millisecond or two; the turn-end part is never below zero (see fit_to_server), and
        # the whole shown is the sum of the parts shown.
        turn_end = max(whole - server - buffer, 0)
        inside = " + ".join(f"{name} {v}" for name, v in known) if complete else ""
        server_text = f"server {server}" + (f" ({inside})" if inside else "")
        return (
            f"{_head(turn_end + server + buffer)} = turn end + network {turn_end} + "
            f"{server_text} + playback buffer {buffer}"
        )


def _head(whole_ms: int) -> str:
    return f"{whole_ms} ms from your last word to the bot's voice"
