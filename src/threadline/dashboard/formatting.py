"""Jinja filters: how times, digests and numbers read on a page."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable


def when(value: datetime | None) -> str:
    """UTC to the second: pages are read by people comparing them with logs."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def short(digest: str | None, length: int = 12) -> str:
    """The head of a digest or commit, enough to recognise it (the full value goes in a title)."""
    if not digest:
        return "—"
    return digest.split(":", 1)[-1][:length]


def number(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


FILTERS: dict[str, Callable[..., Any]] = {"when": when, "short": short, "number": number, "percent": percent}
