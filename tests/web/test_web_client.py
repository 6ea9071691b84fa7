"""The page served at ``/``: a spoken turn in headless Chromium with a fake microphone, clear
messages when something is refused, nothing fetched from outside, and its wire format."""

from __future__ import annotations

import re

import httpx
from web_helpers import PHONE, TOKEN, server_config, web_rig

from airvoice import protocol
from airvoice.engines.ultravox.conversation import AssistantTurn
from airvoice.pipeline import Engines
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.server.web import STATIC_DIR
from airvoice.testing.instant import InstantKokoro, InstantUltravox

TURN_TIMEOUT_MS = 45_000
SITE = "http://127.0.0.1"  # the pages' site, as NetLog names it


def _normalized(text: str) -> str:
    return " ".join(text.split())


async def test_a_spoken_turn_shows_bot_text_and_latency(engines, speech_wav, tmp_path):
    async with web_rig(engines, tmp_path, speech_wav) as rig:
        page, log, response = await rig.open(
            f"token={TOKEN}", permissions=["microphone"], viewport=PHONE
        )
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert TOKEN not in page.url  # the fragment left the address bar
        assert await page.input_value("#token") == TOKEN

        await page.click("#connect")
        await page.wait_for_selector("body[data-state='live']", timeout=15_000)
        assert await page.locator("#hangup").is_visible()
        done = ".turn.bot[data-browser-latency-ms][data-server-latency-ms][aria-busy='false']"
        bot = page.locator(done).first
        await bot.wait_for(timeout=TURN_TIMEOUT_MS)
        await page.wait_for_selector("#status[data-tone='live']", timeout=TURN_TIMEOUT_MS)

        shown = await bot.locator(".text").text_content()
        latency_line = await bot.locator(".latency").text_content()
        browser_ms = int(await bot.get_attribute("data-browser-latency-ms"))
        server_ms = int(await bot.get_attribute("data-server-latency-ms"))
        audio_ms = int(await bot.get_attribute("data-audio-ms"))
        user_note = await page.locator(".turn.user .note").first.text_content()
        session = next(iter(rig.app.state.airvoice.sessions))
        said = [t.text for t in session.conversation.turns if isinstance(t, AssistantTurn)]
        await page.screenshot(path=str(tmp_path / "turn-phone.png"), full_page=True)

        await page.click("#hangup")
        await page.wait_for_selector("body[data-state='idle']", timeout=5_000)
        assert "Call ended" in await page.locator("#alert").text_content()

    print(f"\nweb turn: browser {browser_ms} ms, server {server_ms} ms: {latency_line}")
    # The page streamed exactly what the model said, and played the reply.
    assert shown and said and _normalized(shown) == _normalized(said[0])
    assert audio_ms > 200
    assert re.search(r"Spoke for [1-9]\.\d s", user_note or "")  # ~2.6 s of speech was heard
    # Browser latency runs from the last voiced frame, before the server's VAD called the turn
    # over; the server's runs from that call. So the browser's is the larger of the two.
    assert 0 < server_ms < browser_ms < 20_000
    assert f"Latency {browser_ms} ms" in latency_line and f"{server_ms} ms" in latency_line
    assert "LLM" in latency_line and "TTS" in latency_line and "sending" in latency_line
    # Nothing left this machine, the log is not vacuous, and the token never rode on a URL.
    assert not log.outside(), log.outside()
    assert any(u.endswith("/static/protocol.js") for u in log.urls)
    assert len(log.websockets) == 1 and log.websockets[0].startswith("ws://127.0.0.1:")
    assert not any(TOKEN in u for u in log.urls)
    assert not log.errors, log.errors
    # The browser's own record agrees, worklet included, down to the sockets it opened.
    net = rig.net_log
    fetched = net.page_requests(SITE)
    assert any(u.endswith("/static/capture-worklet.js") for u in fetched), fetched
    assert any(u.startswith("ws://127.0.0.1:") for u in fetched), fetched
    assert not net.page_requests_outside(SITE)
    assert net.remote and not net.left_this_machine(), net.left_this_machine()


async def test_refusals_are_explained(engines, speech_wav, tmp_path):
    async with web_rig(engines, tmp_path, speech_wav) as rig:
        page, log, _ = await rig.open("token=not-the-token", permissions=["microphone"])
        await page.click("#connect")
        alert = page.locator("#alert")
        await alert.wait_for(state="visible", timeout=15_000)
        assert "refused the session token" in await alert.text_content()
        await page.screenshot(path=str(tmp_path / "wrong-token.png"))
        assert await page.get_attribute("body", "data-state") == "idle"
        assert await page.locator("#connect").is_enabled()

        page, log2, _ = await rig.open(f"token={TOKEN}&voice=no_such_voice", permissions=[])
        await page.click("#connect")
        alert = page.locator("#alert")
        await alert.wait_for(state="visible", timeout=15_000)
        assert "refused the voice options" in await alert.text_content()

        page, log3, _ = await rig.open("", permissions=[])
        await page.click("#connect")
        assert "Enter the session token" in await page.locator("#alert").text_content()
    for entry in (log, log2, log3):
        assert not entry.outside()
        assert not entry.errors, entry.errors
    assert len(log.websockets) == 1 and len(log3.websockets) == 0
    assert not rig.net_log.page_requests_outside(SITE) and not rig.net_log.left_this_machine()


async def test_a_denied_microphone_is_explained(engines, tmp_path):
    async with web_rig(engines, tmp_path, auto_accept_media=False) as rig:
        page, log, _ = await rig.open(f"token={TOKEN}", permissions=[])
        await page.click("#connect")
        alert = page.locator("#alert")
        await alert.wait_for(state="visible", timeout=15_000)
        assert "Microphone access was denied" in await alert.text_content()
        assert await page.get_attribute("body", "data-state") == "idle"
    assert log.websockets == []  # no session is opened without a microphone
    assert not log.outside() and not log.errors, log.errors
    assert not rig.net_log.left_this_machine()


async def test_the_page_codec_matches_the_python_one(engines, tmp_path):
    """protocol.js, in the browser, against airvoice.protocol, byte for byte both ways."""
    pcm = bytes(range(256)) * 5  # 640 bytes: one 20 ms frame
    frames = [
        protocol.AudioFrame(pcm, 16000, 1),
        protocol.AudioFrame(b"\x01\x00" * 960, 24000, 1),
        protocol.client_ready("airvoice-web"),
        protocol.MessageFrame(
            {"label": "rtvi-ai", "type": "bot-llm-text", "data": {"text": "é ✓"}}
        ),
        protocol.TextFrame("hello"),
        protocol.TranscriptionFrame("hi", "user", "t0"),
        protocol.InterruptionFrame(),
    ]
    async with web_rig(engines, tmp_path) as rig:
        page, log, _ = await rig.open("")
        decoded = await page.evaluate(
            """async (frames) => {
              const w = await import('/static/protocol.js');
              return frames.map((hex) => {
                const bytes = Uint8Array.from(hex.match(/../g).map((h) => parseInt(h, 16)));
                const f = w.decode(bytes);
                if (f.kind === 'audio') f.audio = Array.from(f.audio);
                return f;
              });
            }""",
            [protocol.encode(f).hex() for f in frames],
        )
        encoded = await page.evaluate(
            """async (pcm) => {
              const w = await import('/static/protocol.js');
              const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
              const msg = {label: 'rtvi-ai', type: 'bot-llm-text', data: {text: 'é ✓'}};
              return [
                hex(w.encodeAudio(Uint8Array.from(pcm), 16000, 1)),
                hex(w.encodeMessage(msg)),
                hex(w.encodeText('hello')),
                hex(w.encodeInterruption()),
                hex(w.encodeMessage(w.clientReady())),
              ];
            }""",
            list(pcm),
        )
        bad = await page.evaluate(
            """async () => {
              const w = await import('/static/protocol.js');
              const out = [];
              for (const b of [[0x12, 0x05, 0x01], [0xff], [0x0a, 0x00, 0x12, 0x00], []]) {
                try { w.decode(Uint8Array.from(b)); out.push('ok'); }
                catch (e) { out.push(e.name); }
              }
              return out;
            }"""
        )
    assert decoded[0] == {
        "kind": "audio",
        "audio": list(pcm),
        "sampleRate": 16000,
        "numChannels": 1,
    }
    assert decoded[1]["sampleRate"] == 24000 and len(decoded[1]["audio"]) == 1920
    assert decoded[2]["kind"] == "message" and decoded[2]["data"]["type"] == "client-ready"
    assert decoded[3] == {"kind": "message", "data": frames[3].data}
    assert decoded[4] == {"kind": "text", "text": "hello"}
    assert decoded[5] == {
        "kind": "transcription",
        "text": "hi",
        "userId": "user",
        "timestamp": "t0",
    }
    assert decoded[6] == {"kind": "interruption"}
    assert protocol.decode(bytes.fromhex(encoded[0])) == protocol.AudioFrame(pcm, 16000, 1)
    assert protocol.decode(bytes.fromhex(encoded[1])) == frames[3]
    assert protocol.decode(bytes.fromhex(encoded[2])) == protocol.TextFrame("hello")
    assert protocol.decode(bytes.fromhex(encoded[3])) == protocol.InterruptionFrame()
    ready = protocol.decode(bytes.fromhex(encoded[4]))
    assert protocol.rtvi_type(ready) == "client-ready"
    assert ready.data["data"]["about"]["library"] == "airvoice-web" and ready.data["id"]
    # The page decodes the interruption frame, and says so (the server sends it only then).
    assert ready.data["data"]["about"]["features"] == [protocol.INTERRUPTION_FRAME_FEATURE]
    assert bad == ["ProtocolError"] * 4
    assert not log.errors, log.errors


async def test_assets_are_served_from_the_package_only():
    config = server_config()
    engines = Engines(InstantUltravox(), InstantKokoro())  # no model: only the assets count
    async with running_server(create_app(config, engines), config) as server:
        port = bound_port(server)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            page = await http.get("/")
            worklet = await http.get("/static/capture-worklet.js")
            missing = [
                (await http.get(path)).status_code
                for path in ("/static/nothing.js", "/static/..%2fweb.py", "/static/../web.py")
            ]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert f"connect-src 'self' ws://127.0.0.1:{port} wss://127.0.0.1:{port}" in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-content-type-options"] == "nosniff"
    assert worklet.status_code == 200 and "javascript" in worklet.headers["content-type"]
    assert missing == [404, 404, 404]
    # No asset names another host: no CDN, no font service, no analytics.
    for path in STATIC_DIR.iterdir():
        text = path.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path.name
