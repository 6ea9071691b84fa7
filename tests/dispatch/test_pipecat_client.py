"""The official Pipecat JS client, in Debian's Chromium, connects through ``POST /connect``."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from pipecat_js import PAGE, build_bundle

from airvoice.testing.replicas import (
    TOKEN,
    free_port,
    instant_replicas,
    running_dispatcher,
    serve_app,
)

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--disable-features=AutofillServerCommunication",
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return build_bundle(tmp_path_factory.mktemp("pipecat-js")).read_bytes()


def page_app(bundle: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def index() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/pipecat.js")
    async def script() -> Response:
        return Response(bundle, media_type="text/javascript")

    return app


async def test_the_pipecat_client_connects_through_the_dispatcher(bundle):
    from playwright.async_api import async_playwright

    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    async with (
        # The page is served from its own origin: the replicas allow it, as the dispatcher does.
        instant_replicas(2, max_sessions=1, allowed_origins=[origin]) as replicas,
        running_dispatcher([r.url for r in replicas], allow_origins=[origin]) as dispatcher,
        serve_app(page_app(bundle), port=page_port),
        async_playwright() as playwright,
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            urls: list[str] = []
            errors: list[str] = []
            context.on("request", lambda request: urls.append(request.url))
            page.on("websocket", lambda ws: urls.append(ws.url))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(origin + "/")
            await page.wait_for_selector("body[data-ready='true']", state="attached")
            endpoint = f"{dispatcher}/connect"

            async def start_session(token: str) -> dict:
                # The client waits for bot-ready with no timeout of its own: bound it here.
                script = "([e, t]) => startSession(e, t)"
                return await asyncio.wait_for(page.evaluate(script, [endpoint, token]), 60)

            first = await start_session(TOKEN)
            assert first["ok"], first
            assert "bot-ready" in first["events"] and first["state"] == "ready"
            second = await start_session(TOKEN)
            assert second["ok"], second
            # One session on each replica: the dispatcher spread them.
            assert [r.state.slots.active for r in replicas] == [1, 1]

            full = await start_session(TOKEN)
            assert not full["ok"] and full["status"] == 503
            assert "every replica is full" in full["error"]
            wrong = await start_session("nope")
            assert not wrong["ok"] and wrong["status"] == 401 and "deploy token" in wrong["error"]

            sockets = [u for u in urls if u.startswith("ws://")]
            assert len(sockets) == 2 and all("/ws?token=av1." in u for u in sockets)
            assert {urlsplit(u).port for u in sockets} == {urlsplit(r.url).port for r in replicas}
            assert [u for u in urls if urlsplit(u).hostname != "127.0.0.1"] == []
            assert errors == []
            await page.evaluate("Promise.all(window.clients.map((c) => c.disconnect()))")
        finally:
            await browser.close()
