"""``airvoice dispatch``: one public URL in front of several airvoice replicas."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from airvoice.dispatch.config import DispatchConfig

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
        typer.Option(
            help="Origin (scheme://host[:port]) of a web page allowed to call /connect from a "
            "browser (CORS); repeatable."
        ),
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(
            min=0,
            help="In a RunPod pod: end the pod once no replica has answered for this many "
            "minutes (0: never). Outside a pod: no effect.",
        ),
    ] = 15.0,
    idle_action: Annotated[
        str, typer.Option(help="terminate or stop the pod when --idle-timeout passes.")
    ] = "terminate",
    ssl_certfile: Annotated[str | None, typer.Option(help="TLS certificate.")] = None,
    ssl_keyfile: Annotated[str | None, typer.Option(help="TLS private key.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Send each new session to the replica with the most room: POST /connect answers with
    that replica's WebSocket URL and a short-lived token signed for it (Pipecat's convention)."""
    from pydantic import ValidationError

    try:
        config = dispatch_config(
            replica=replica,
            host=host,
            port=port,
            token=token,
            secret=secret,
            token_ttl=token_ttl,
            poll_interval=poll_interval,
            allow_origin=allow_origin,
            idle_timeout=idle_timeout,
            idle_action=idle_action,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            log_level=log_level,
        )
        from airvoice.dispatch.app import create_dispatch_app

        app = create_dispatch_app(config)
    except DispatchUsageError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    except (ValidationError, ValueError) as exc:
        console.print(f"[red]Invalid settings:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    scheme = "https" if ssl_certfile else "http"
    console.print(
        f"airvoice dispatch: {scheme}://{host}:{port}/connect -> {len(config.replicas)} replicas"
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
    )


class DispatchUsageError(ValueError):
    """A missing or wrong command-line value of ``airvoice dispatch``."""


def dispatch_config(
    *,
    replica: list[str] | None,
    host: str,
    port: int,
    token: str | None,
    secret: str | None,
    token_ttl: float,
    poll_interval: float,
    allow_origin: list[str] | None,
    idle_timeout: float,
    idle_action: str,
    ssl_certfile: str | None,
    ssl_keyfile: str | None,
    log_level: str,
    environ: Mapping[str, str] | None = None,
) -> DispatchConfig:
    """The dispatcher's settings from its command-line values, the rest from ``environ``
    (``AIRVOICE_DISPATCH_REPLICAS``, ``AIRVOICE_TOKEN``, ``AIRVOICE_DISPATCH_SECRET``)."""
    from airvoice.dispatch.config import DispatchConfig
    from airvoice.origins import normalize_origin

    env = os.environ if environ is None else environ
    urls = list(replica or [])
    if not urls:
        listed = env.get("AIRVOICE_DISPATCH_REPLICAS", "")
        urls = [u.strip() for u in listed.split(",") if u.strip()]
    token = token or env.get("AIRVOICE_DISPATCH_TOKEN") or env.get("AIRVOICE_TOKEN")
    secret = secret or env.get("AIRVOICE_DISPATCH_SECRET")
    missing = [name for name, value in (("--token", token), ("--secret", secret)) if not value]
    if missing:
        raise DispatchUsageError(
            f"{' and '.join(missing)} missing. The dispatcher needs the deploy token "
            "(AIRVOICE_TOKEN) and the secret the replicas share (AIRVOICE_DISPATCH_SECRET)."
        )
    if not urls:
        raise DispatchUsageError("No replica given: pass --replica https://host:port (repeat).")
    try:
        origins = [o if o.strip() == "*" else normalize_origin(o) for o in allow_origin or []]
    except ValueError as exc:
        raise DispatchUsageError(f"--allow-origin: {exc}.") from None
    return DispatchConfig(
        host=host,
        port=port,
        replicas=urls,
        token=token,
        secret=secret,
        token_ttl_seconds=token_ttl,
        poll_interval_seconds=poll_interval,
        allow_origins=origins,
        idle_timeout_minutes=idle_timeout,
        idle_action=idle_action.strip().lower(),
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        log_level=log_level,
    )
