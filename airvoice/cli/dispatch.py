"""``airvoice dispatch``: one public URL in front of several airvoice replicas."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def dispatch(
    replica: Annotated[
        list[str] | None,
        typer.Option(
            "--replica",
            "-r",
            help="Base URL of a replica (https://host:port); repeat for each. Default: the "
            "comma-separated AIRVOICE_DISPATCH_REPLICAS.",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    token: Annotated[
        str | None,
        typer.Option(
            help="The deploy token clients present to POST /connect [default: AIRVOICE_TOKEN]."
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            help="Signing secret shared with the replicas [default: AIRVOICE_DISPATCH_SECRET]."
        ),
    ] = None,
    token_ttl: Annotated[
        float, typer.Option(min=1, max=600, help="Seconds a session token stays valid.")
    ] = 30.0,
    poll_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between /health polls of each replica.")
    ] = 1.0,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(help="Web page origin allowed to call /connect (CORS); repeatable."),
    ] = None,
    ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate.")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Send each new session to the replica with the most room: POST /connect answers with
    that replica's WebSocket URL and a short-lived token signed for it (Pipecat's convention)."""
    from pydantic import ValidationError

    from airvoice.dispatch.config import DispatchConfig

    urls = list(replica or [])
    if not urls:
        env = os.environ.get("AIRVOICE_DISPATCH_REPLICAS", "")
        urls = [u.strip() for u in env.split(",") if u.strip()]
    token = token or os.environ.get("AIRVOICE_DISPATCH_TOKEN") or os.environ.get("AIRVOICE_TOKEN")
    secret = secret or os.environ.get("AIRVOICE_DISPATCH_SECRET")
    missing = [name for name, value in (("--token", token), ("--secret", secret)) if not value]
    if missing:
        console.print(
            f"[red]{' and '.join(missing)} missing.[/red] The dispatcher needs the deploy token "
            "(AIRVOICE_TOKEN) and the secret the replicas share (AIRVOICE_DISPATCH_SECRET)."
        )
        raise typer.Exit(2)
    if not urls:
        console.print("[red]No replica given:[/red] pass --replica https://host:port (repeat).")
        raise typer.Exit(2)
    try:
        config = DispatchConfig(
            host=host,
            port=port,
            replicas=urls,
            token=token,
            secret=secret,
            token_ttl_seconds=token_ttl,
            poll_interval_seconds=poll_interval,
            allow_origins=list(allow_origin or []),
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_level=log_level,
        )
        from airvoice.dispatch.app import create_dispatch_app

        app = create_dispatch_app(config)
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]Invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    scheme = "https" if ssl_certfile else "http"
    console.print(f"airvoice dispatch: {scheme}://{host}:{port}/connect -> {len(urls)} replicas")
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )
