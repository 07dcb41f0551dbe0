"""Newest-first pages of audit entries, with links to the next older and newer pages.

People read an audit log from the latest entry back. The store reads a range of sequence
numbers in either direction, so a page is one bounded read plus one row to know whether more
lie beyond it. Pure: the reading is a function passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threadline.domain import hashchain


class Fetch(Protocol):
    def __call__(self, *, after: int, before: int | None, newest_first: bool,
                 limit: int) -> Sequence[hashchain.AuditEntry]:
        """At most ``limit`` matching entries with ``after < seq < before``, in the order asked."""


@dataclass(frozen=True)
class Page:
    entries: tuple[hashchain.AuditEntry, ...]  # newest first
    newer_after: int | None  # ``?after=`` of the next newer page, None when this page is the newest
    older_before: int | None  # ``?before=`` of the next older page, None when nothing is older


def page(fetch: Fetch, *, limit: int, before: int | None = None, after: int | None = None) -> Page:
    """One page of at most ``limit`` entries: the newest (neither bound), those just older than
    ``before``, or those just newer than ``after``."""
    if after is not None:
        newer = list(fetch(after=after, before=None, newest_first=False, limit=limit + 1))
        entries = newer[:limit][::-1]
        more_newer = len(newer) > limit
        more_older = bool(fetch(after=0, before=entries[-1].seq if entries else after + 1, newest_first=True,
                                limit=1))
    else:
        older = list(fetch(after=0, before=before, newest_first=True, limit=limit + 1))
        entries = older[:limit]
        more_older = len(older) > limit
        more_newer = before is not None and bool(
            fetch(after=entries[0].seq if entries else before - 1, before=None, newest_first=False, limit=1))
    return Page(tuple(entries), entries[0].seq if entries and more_newer else None,
                entries[-1].seq if entries and more_older else None)
