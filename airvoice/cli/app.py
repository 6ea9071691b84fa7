"""The root Typer app: ``airvoice --version`` and the command groups."""

from __future__ import annotations

from typing import Annotated

import typer

from airvoice import __version__
from airvoice.cli.demo import demo
from airvoice.cli.deploy import deploy
from airvoice.cli.dispatch import dispatch
from airvoice.cli.models import models_app
from airvoice.cli.pods import pods_app, volumes_app
from airvoice.cli.scale import scale
from airvoice.cli.serve import serve
from airvoice.cli.talk import say, talk

app = typer.Typer(
    name="airvoice",
    help="A private, low-latency voice assistant on a GPU you rent.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airvoice {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """A private, low-latency voice assistant on a GPU you rent."""


app.command("demo")(demo)
app.command("serve")(serve)
app.add_typer(models_app, name="models")
app.command("talk")(talk)
app.command("say")(say)
app.command("deploy")(deploy)
app.command("dispatch")(dispatch)
app.command("scale")(scale)
app.add_typer(pods_app, name="pods")
app.add_typer(volumes_app, name="volumes")


def main() -> None:
    """Entry point of the ``airvoice`` console script."""
    app()
