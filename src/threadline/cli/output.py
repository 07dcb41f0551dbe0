"""Terminal output: rich tables for people, ``--json`` for scripts, one error style."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Sequence

import orjson
import typer
from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True)
errors_console = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    view = Table(title=title, title_justify="left")
    for column in columns:
        view.add_column(column, overflow="fold")
    for row in rows:
        view.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(view)


def fail(message: str, *, code: int = 1) -> typer.Exit:
    errors_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)
