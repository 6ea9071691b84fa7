"""The ``airvoice`` command line (Typer). Commands import their heavy parts lazily."""

from __future__ import annotations

from airvoice.cli.app import app, main

__all__ = ["app", "main"]
