"""Newest-first audit pages: every matching entry appears exactly once, in order, whichever way
a reader pages and however sparse the matches are."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from threadline.dashboard import audit_paging
from threadline.domain import hashchain

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class Log:
    """Entries 1..n of which ``matching`` pass the filter; ``fetch`` reads like the store."""

    def __init__(self, size: int, matching: set[int]) -> None:
        self.entries = [hashchain.AuditEntry(seq, T0, "a", "x", "o", {}, "", "") for seq in range(1, size + 1)
                        if seq in matching]
        self.size = size
        self.calls: list[tuple[int, int]] = []

    def fetch(self, *, after: int, before: int | None, newest_first: bool,
              limit: int) -> Sequence[hashchain.AuditEntry]:
        assert limit >= 1
        self.calls.append((after, limit))
        found = [e for e in self.entries if e.seq > after and (before is None or e.seq < before)]
        return (found[::-1] if newest_first else found)[:limit]


def seqs(page: audit_paging.Page) -> list[int]:
    return [e.seq for e in page.entries]


def test_the_first_page_is_the_newest_entries() -> None:
    log = Log(1000, set(range(1, 1001)))
    page = audit_paging.page(log.fetch, limit=5)
    assert seqs(page) == [1000, 999, 998, 997, 996]
    assert (page.newer_after, page.older_before) == (None, 996)


def test_older_and_newer_pages_meet_exactly() -> None:
    log = Log(30, {3, 4, 9, 12, 17, 25, 29})
    first = audit_paging.page(log.fetch, limit=3)
    assert seqs(first) == [29, 25, 17] and first.older_before == 17
    second = audit_paging.page(log.fetch, limit=3, before=first.older_before)
    assert seqs(second) == [12, 9, 4] and (second.newer_after, second.older_before) == (12, 4)
    last = audit_paging.page(log.fetch, limit=3, before=second.older_before)
    assert seqs(last) == [3] and (last.newer_after, last.older_before) == (3, None)
    assert seqs(audit_paging.page(log.fetch, limit=3, after=last.newer_after)) == [12, 9, 4]


def test_an_empty_log_or_no_match_gives_an_empty_page() -> None:
    assert audit_paging.page(Log(0, set()).fetch, limit=10) == audit_paging.Page((), None, None)
    assert audit_paging.page(Log(500, set()).fetch, limit=10) == audit_paging.Page((), None, None)


def test_a_page_is_one_read_and_one_look_beyond() -> None:
    log = Log(100_000, {7, 90_000})
    page = audit_paging.page(log.fetch, limit=50, before=90_000)
    assert seqs(page) == [7] and len(log.calls) == 2


@settings(max_examples=150, deadline=None)
@given(size=st.integers(0, 400), data=st.data(), limit=st.integers(1, 20))
def test_paging_back_then_forth_visits_every_match_once(size: int, data: st.DataObject, limit: int) -> None:
    matching = data.draw(st.sets(st.integers(1, max(size, 1)), max_size=size)) if size else set()
    log = Log(size, matching)
    expected = sorted(matching, reverse=True)
    seen: list[int] = []
    page = audit_paging.page(log.fetch, limit=limit)
    pages = [page]
    while True:
        assert len(page.entries) <= limit
        seen += seqs(page)
        if page.older_before is None:
            break
        page = audit_paging.page(log.fetch, limit=limit, before=page.older_before)
        pages.append(page)
    assert seen == expected
    for older, newer in zip(pages[1:], pages):  # every page but the oldest is full, so forward pages align
        assert older.newer_after is not None
        assert audit_paging.page(log.fetch, limit=limit, after=older.newer_after) == newer
