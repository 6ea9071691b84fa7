"""Helpers for the browser tests: a server on loopback, Chromium, and a log of what it fetched."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI

from airvoice.config import ServerConfig
from airvoice.server.app import create_app
from airvoice.server.run import bound_port, running_server
from airvoice.testing.server import offline_server_config

TOKEN = "web-test-token-0123456789"
CHROMIUM = "/usr/bin/chromium"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
PHONE = {"width": 390, "height": 844}


def server_config(**overrides: object) -> ServerConfig:
    return offline_server_config(token=TOKEN, **overrides)


def chromium_args(
    fake_audio: Path | None, net_log: Path, auto_accept_media: bool = True
) -> list[str]:
    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-device-for-media-stream",
        # Chromium's own housekeeping (Debian's build asks accounts.google.com for sign-in
        # state at start) must not reach out during a test: only loopback names resolve.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
        # Chromium asks Google's autofill servers about pages with forms: not in tests.
        "--disable-features=AutofillServerCommunication",
        # The browser-wide record of every request and socket (page events miss worklets).
        f"--log-net-log={net_log}",
        "--net-log-capture-mode=Default",
    ]
    if auto_accept_media:
        args.append("--use-fake-ui-for-media-stream")
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return args


@dataclass
class BrowserLog:
    """Every URL the browser asked for (HTTP requests and WebSockets), and page errors."""

    urls: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, context, page) -> None:
        context.on("request", lambda request: self.urls.append(request.url))
        page.on("websocket", self._websocket)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("console", self._console)

    def _websocket(self, ws) -> None:
        self.urls.append(ws.url)
        self.websockets.append(ws.url)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def outside(self) -> list[str]:
        """URLs whose host is not this machine's loopback."""
        return [u for u in self.urls if urlsplit(u).hostname not in LOOPBACK_HOSTS]


def _is_loopback_address(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class NetLog:
    """What Chromium's network stack did, from its NetLog (written when the browser exits)."""

    requests: list[tuple[str, str]]  # (url, network isolation key: the top frame's site)
    remote: list[str]  # addresses of TCP connects, and of UDP sockets that sent data

    @classmethod
    def read(cls, path: Path) -> NetLog:
        log = json.loads(path.read_text())
        names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
        requests = []
        udp: dict[int, list[str]] = {}
        sent: set[int] = set()
        remote = []
        for event in log["events"]:
            name, params = names.get(event["type"], ""), event.get("params") or {}
            source = event.get("source", {}).get("id", -1)
            if name == "URL_REQUEST_START_JOB" and "url" in params:
                requests.append((params["url"], params.get("network_isolation_key", "")))
            elif name.startswith("TCP_CONNECT"):
                remote += [params["address"]] if "address" in params else []
                remote += list(params.get("address_list", []))
            elif name == "UDP_CONNECT" and "address" in params:
                udp.setdefault(source, []).append(params["address"])
            elif name == "UDP_BYTES_SENT":
                sent.add(source)
        # A UDP connect() that sends nothing (Chromium's local-address probe) sends no packet.
        remote += [a for s in sent for a in udp.get(s, [])]
        return cls(requests, remote)

    def page_requests(self, site: str) -> list[str]:
        """URLs fetched for a page of ``site`` (its frames, workers and worklets)."""
        return [url for url, key in self.requests if site in key.split()]

    def page_requests_outside(self, site: str) -> list[str]:
        page = self.page_requests(site)
        return [url for url in page if urlsplit(url).hostname not in LOOPBACK_HOSTS]

    def left_this_machine(self) -> list[str]:
        return [a for a in self.remote if not _is_loopback_address(a)]


@dataclass
class WebRig:
    app: FastAPI
    base_url: str
    browser: object
    logs: list[BrowserLog] = field(default_factory=list)
    net_log: NetLog | None = None  # after the browser closed

    async def open(self, fragment: str = "", **context_options: object):
        """A fresh context and page at ``/`` (the fragment after ``#``); returns (page, log)."""
        context = await self.browser.new_context(**context_options)
        page = await context.new_page()
        log = BrowserLog()
        log.attach(context, page)
        self.logs.append(log)
        response = await page.goto(f"{self.base_url}/{'#' + fragment if fragment else ''}")
        assert response is not None and response.status == 200
        await page.wait_for_selector("body[data-ready='true']", timeout=10_000)
        return page, log, response


@contextlib.asynccontextmanager
async def web_rig(
    engines,
    tmp_path: Path,
    fake_audio: Path | None = None,
    auto_accept_media: bool = True,
    **config: object,
) -> AsyncIterator[WebRig]:
    """A server with the offline engines on 127.0.0.1 and a headless Chromium; after the
    block, ``rig.net_log`` holds the browser's NetLog."""
    from playwright.async_api import async_playwright

    cfg = server_config(**config)
    app = create_app(cfg, engines)
    net_log = tmp_path / "chromium-netlog.json"
    async with running_server(app, cfg) as server:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=chromium_args(fake_audio, net_log, auto_accept_media),
            )
            rig = WebRig(app, f"http://127.0.0.1:{bound_port(server)}", browser)
            try:
                yield rig
            finally:
                await browser.close()
    rig.net_log = NetLog.read(net_log)
