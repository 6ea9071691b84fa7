"""The per-turn latency: each figure measures one stretch, and the parts add up to the whole."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import numpy as np
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    LLMTextFrame,
    TTSAudioRawFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.observers.base_observer import FramePushed
from pipecat.processors.frame_processor import FrameDirection

from airvoice.client import TurnLatency, VoiceClient
from airvoice.client.audio import IN_FRAME_BYTES
from airvoice.client.client import VOICED_RMS
from airvoice.server.app import create_app
from airvoice.server.metrics import ServerMetrics, TurnLatencyObserver
from airvoice.server.run import ServerThread
from airvoice.testing.server import TOKEN, offline_server_config, ws_url

SERVER_PARTS = ("llm_first_text_ms", "tts_first_audio_ms", "send_first_audio_ms")


def _last_voiced_offset(pcm16: np.ndarray) -> float:
    """Seconds from the start of ``pcm16`` to the end of its last voiced 20 ms frame."""
    frame = IN_FRAME_BYTES // 2
    last = 0
    for index in range(0, pcm16.size, frame):
        chunk = pcm16[index : index + frame].astype(np.float32)
        if np.sqrt(np.mean(chunk**2)) > VOICED_RMS:
            last = index // frame
    return (last + 1) * 0.02


def _figures(line: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", line)]


async def test_the_parts_of_a_real_turn_add_up_to_the_whole(engines, speech16, no_network):
    config = offline_server_config()
    with ServerThread(create_app(config, engines), config) as server:
        client = VoiceClient(ws_url(server, token=None), TOKEN, reconnect=False)
        await client.connect()
        try:
            asked = time.perf_counter()
            reply = await client.ask(speech16, 16000, timeout=60)
            first_played = client.player.sink.voiced_at[0]
        finally:
            await client.close()
    latency = reply.latency
    assert latency is not None
    server = latency.server
    # The server's part is its three consecutive stretches (server clock, 0.1 ms rounding).
    assert set(SERVER_PARTS) <= set(server)
    assert all(server[key] >= 0 for key in SERVER_PARTS)
    assert abs(sum(server[key] for key in SERVER_PARTS) - latency.server_ms) < 0.3
    # The whole is turn end + network, the server's part and the client's playback buffer.
    assert latency.turn_end_ms + latency.server_ms + latency.buffer_ms == latency.user_to_speaker_ms
    # Each part holds what its name says: the silence the server waits before ending the turn,
    # and the prebuffer (60 ms) plus a tick of the player (20 ms; late on a busy machine).
    assert latency.turn_end_ms >= 1000 * config.silence_timeout_seconds
    assert 0 <= latency.buffer_ms <= 60 + 20 + 200
    # The whole matches what a stopwatch outside the client sees: from the question's last
    # voiced frame leaving (sent in real time from ``asked``) to the first voiced frame played.
    outside = 1000 * (first_played - asked - _last_voiced_offset(speech16))
    assert abs(latency.user_to_speaker_ms - outside) < 250, (latency, outside)
    # The printed line adds up in whole milliseconds too.
    line = latency.describe()
    whole, turn_end, server_ms, llm, tts, send, buffer = _figures(line)
    assert whole == turn_end + server_ms + buffer and server_ms == llm + tts + send, line
    assert turn_end >= 0 and whole == round(latency.user_to_speaker_ms)


async def _push(observer: TurnLatencyObserver, frame: object) -> None:
    data = FramePushed(
        source=None, destination=None, frame=frame, direction=FrameDirection.DOWNSTREAM,
        timestamp=0, first_push=True,
    )  # fmt: skip
    await observer.on_push_frame(data)


async def test_a_pause_that_was_not_the_end_of_the_turn_does_not_count():
    """The user pauses (the server ends the turn), speaks on, then stops: the server's part
    runs from the last end of turn, not from the pause (it once counted the user's speech)."""
    reports: list[dict] = []

    async def report(breakdown: dict) -> None:
        reports.append(breakdown)

    observer = TurnLatencyObserver(ServerMetrics(), report)
    await _push(observer, UserStartedSpeakingFrame())
    await _push(observer, UserStoppedSpeakingFrame())  # a pause...
    await _push(observer, LLMTextFrame("Hel"))  # ...a reply starts, then is interrupted
    await _push(observer, UserStartedSpeakingFrame())
    await asyncio.sleep(0.3)  # the user speaks on
    stopped = UserStoppedSpeakingFrame()
    await _push(observer, stopped)
    await _push(observer, stopped)  # the same frame at the next processor: counted once
    await asyncio.sleep(0.02)
    await _push(observer, LLMTextFrame("Hi"))
    await asyncio.sleep(0.02)
    await _push(observer, TTSAudioRawFrame(b"\x01\x00" * 480, 24000, 1))
    await asyncio.sleep(0.02)
    await _push(observer, BotStartedSpeakingFrame())
    (breakdown,) = reports
    assert breakdown["turn_end_to_first_audio_ms"] < 200, breakdown
    parts = sum(breakdown[key] for key in SERVER_PARTS)
    assert abs(parts - breakdown["turn_end_to_first_audio_ms"]) < 0.3
    assert all(breakdown[key] >= 15 for key in SERVER_PARTS), breakdown


def test_a_line_without_the_servers_breakdown_says_only_what_is_known():
    assert TurnLatency(812.4).describe() == "812 ms from your last word to the bot's voice"
    late_noise = TurnLatency(500.0, {"turn_end_to_first_audio_ms": 520.0}, buffer_ms=60.0)
    late_noise.fit_to_server()  # the client counted noise after the server's end of turn
    assert late_noise.turn_end_ms == 0 and late_noise.user_to_speaker_ms == 580.0


def test_parts_rounded_apart_never_make_the_turn_end_negative():
    """A CI run printed "turn end + network -1": after fit_to_server the turn-end part is 0,
    but Ultravox, Kokoro and sending each round up while their sum rounds down."""
    parts = {"llm_first_text_ms": 23.6, "tts_first_audio_ms": 1348.6, "send_first_audio_ms": 3.2}
    late_noise = TurnLatency(1300.0, {"turn_end_to_first_audio_ms": 1375.4, **parts}, 13.0)
    late_noise.fit_to_server()
    whole, turn_end, server_ms, llm, tts, send, buffer = _figures(late_noise.describe())
    assert (turn_end, server_ms, llm, tts, send, buffer) == (0, 1376, 24, 1349, 3, 13)
    assert whole == turn_end + server_ms + buffer == 1389


def test_the_annotated_example_in_the_client_guide_adds_up():
    guide = Path(__file__).resolve().parents[2] / "docs" / "client.md"
    section = guide.read_text().split("## The latency of a turn")[1].split("\n## ")[0]
    line = re.search(r"```text\n(.*?)\n```", section, re.S).group(1)
    whole, turn_end, server_ms, llm, tts, send, buffer = _figures(line)
    assert whole == turn_end + server_ms + buffer and server_ms == llm + tts + send, line
    # The same line as TurnLatency prints it, and the table annotates each of its figures.
    example = TurnLatency(
        whole,
        {
            "turn_end_to_first_audio_ms": server_ms,
            "llm_first_text_ms": llm,
            "tts_first_audio_ms": tts,
            "send_first_audio_ms": send,
        },
        buffer_ms=buffer,
    )
    assert example.describe() == line
    table = [int(n) for n in re.findall(r"^\| (?:· )?\*\*(\d+)\*\*", section, re.M)]
    assert table == [whole, turn_end, server_ms, llm, tts, send, buffer]
