"""What the cloud commands share: the API key, the client, errors shown without tracebacks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from airvoice.errors import AirvoiceError

console = Console(stderr=True)

ApiKeyOption = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="RunPod API key [default: RUNPOD_API_KEY, or [default] in ~/.runpod/config.toml].",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def make_client(api_key: str | None) -> Any:
    """A RunPod client with the key resolved (never printed)."""
    from airvoice.cloud.credentials import resolve_api_key
    from airvoice.cloud.runpod import RunPodClient

    return RunPodClient(
        resolve_api_key(api_key), on_wait=lambda text: console.print(f"[dim]{escape(text)}[/dim]")
    )


@contextlib.contextmanager
def cloud_errors() -> Iterator[None]:
    """Show airvoice's own errors as one red message and exit 1 (no traceback)."""
    try:
        yield
    except AirvoiceError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(1) from exc
    except KeyboardInterrupt as exc:
        console.print("[red]interrupted[/red]")
        raise typer.Exit(130) from exc


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, sort_keys=True))
