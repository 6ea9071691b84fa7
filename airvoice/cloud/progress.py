"""How long-running cloud work shows itself: a spinner with elapsed time per phase."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Phase(Protocol):
    """A phase in progress: its line can be updated."""

    def update(self, text: str) -> None:
        """Replace the phase's status text."""


class Reporter(Protocol):
    """Where the deploy workflow says what it is doing."""

    def phase(self, title: str) -> contextlib.AbstractContextManager[Phase]:
        """A phase with a spinner and elapsed time; done (or failed) when the block ends."""

    def info(self, text: str) -> None:
        """A one-line note."""

    def warn(self, text: str) -> None:
        """A warning the user should read."""


class _SilentPhase:
    def update(self, text: str) -> None:
        pass


class SilentReporter:
    """Says nothing (``--json`` output, tests)."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    @contextlib.contextmanager
    def phase(self, title: str) -> Iterator[Phase]:
        self.notes.append(title)
        yield _SilentPhase()

    def info(self, text: str) -> None:
        self.notes.append(text)

    def warn(self, text: str) -> None:
        self.notes.append(text)


class _RichPhase:
    def __init__(self, progress: Progress, task: int, title: str) -> None:
        self._progress = progress
        self._task = task
        self._title = title

    def update(self, text: str) -> None:
        self._progress.update(self._task, description=f"{self._title}: {escape(text)}")


class RichReporter:
    """Spinners with elapsed time on stderr (rich)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextlib.contextmanager
    def phase(self, title: str) -> Iterator[Phase]:
        started = time.monotonic()
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        with progress:
            task = progress.add_task(escape(title), total=None)
            try:
                yield _RichPhase(progress, task, escape(title))
            except BaseException:
                ok = False
                raise
            else:
                ok = True
            finally:
                progress.stop()
                elapsed = time.monotonic() - started
                mark = "[green]✓[/green]" if ok else "[red]✗[/red]"
                self.console.print(f"{mark} {escape(title)} [dim]({elapsed:.0f} s)[/dim]")

    def info(self, text: str) -> None:
        self.console.print(escape(text), highlight=False)

    def warn(self, text: str) -> None:
        self.console.print(f"[yellow]{escape(text)}[/yellow]", highlight=False)
