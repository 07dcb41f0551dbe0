"""Progress of the quickstart: a spinner while a step runs, then one line with a mark.

Lines fit an 80-column terminal: titles are short, and what a step found goes on indented
lines below its mark. Piped output (a CI log, a test) gets the same lines without the spinner.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.status import Status


class Step:
    """What a running step tells: its current activity, and notes for after its mark."""

    def __init__(self, title: str, status: Status) -> None:
        self._title, self._status = title, status
        self.notes: list[str] = []

    def update(self, activity: str) -> None:
        self._status.update(f"{self._title}: {activity}")

    def note(self, text: str) -> None:
        self.notes.append(text)


class Progress:
    def __init__(self, console: Console) -> None:
        self.console = console

    @contextmanager
    def step(self, title: str) -> Iterator[Step]:
        started = time.monotonic()
        try:
            with self.console.status(title) as status:
                step = Step(title, status)
                yield step
        except KeyboardInterrupt:
            self.console.print(f"[yellow]✗[/yellow] {title} [dim](interrupted)[/dim]",
                               highlight=False)
            raise
        except BaseException:
            self.console.print(f"[red]✗[/red] {title}", highlight=False)
            raise
        took = time.monotonic() - started
        self.console.print(f"[green]✓[/green] {title} [dim]({took:.1f}s)[/dim]", highlight=False)
        for text in step.notes:
            self.console.print(f"  {text}", highlight=False, markup=False)
