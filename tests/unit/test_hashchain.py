"""The hash chain detects edits, deletions, reordering and forged checkpoints."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

from threadline.domain import hashchain

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def chain(n: int) -> list[hashchain.AuditEntry]:
    entries: list[hashchain.AuditEntry] = []
    for i in range(n):
        head = (entries[-1].seq, entries[-1].hash) if entries else None
        entries.append(hashchain.link(head, T0 + timedelta(seconds=i), "alice", "model.create",
                                      f"model/m{i}", {"i": i, "nested": {"b": 1.5, "a": [1, 2]}}))
    return entries


def sign(c: hashchain.Checkpoint) -> bool:
    return c.signature == b"ok:" + hashchain.checkpoint_message(c.seq, c.hash)


def checkpoint(entry: hashchain.AuditEntry, good: bool = True) -> hashchain.Checkpoint:
    message = hashchain.checkpoint_message(entry.seq, entry.hash)
    return hashchain.Checkpoint(entry.seq, entry.hash, T0, "k", (b"ok:" if good else b"no:") + message)


def test_intact_chain_verifies() -> None:
    entries = chain(10)
    result = hashchain.verify(entries, [checkpoint(entries[4])], sign, (10, entries[-1].hash))
    assert result.ok and result.entries == 10 and result.checkpoints == 1


def test_empty_chain_verifies() -> None:
    assert hashchain.verify([], [], sign, (0, hashchain.GENESIS)).ok


def test_edited_entry_is_named() -> None:
    entries = chain(5)
    entries[2] = dataclasses.replace(entries[2], actor="mallory")
    result = hashchain.verify(entries, [], sign)
    assert not result.ok and result.first_bad_seq == 3 and "edited" in (result.reason or "")


def test_deleted_entry_is_named() -> None:
    entries = chain(5)
    del entries[1]
    result = hashchain.verify(entries, [], sign)
    assert not result.ok and result.first_bad_seq == 2 and "missing" in (result.reason or "")


def test_swapped_contents_are_detected() -> None:
    entries = chain(5)
    a, b = entries[1], entries[2]
    entries[1] = dataclasses.replace(b, seq=a.seq)
    entries[2] = dataclasses.replace(a, seq=b.seq)
    result = hashchain.verify(entries, [], sign)
    assert not result.ok and result.first_bad_seq == 2


def test_tail_deletion_is_caught_by_head_and_checkpoint() -> None:
    entries = chain(6)
    head = (6, entries[-1].hash)
    assert not hashchain.verify(entries[:4], [], sign, head).ok
    result = hashchain.verify(entries[:4], [checkpoint(entries[5])], sign)
    assert not result.ok and result.first_bad_seq == 5


def test_rewritten_chain_fails_its_checkpoint() -> None:
    entries = chain(4)
    forged = [dataclasses.replace(e, actor="mallory") for e in entries]
    rewritten: list[hashchain.AuditEntry] = []
    for e in forged:
        head = (rewritten[-1].seq, rewritten[-1].hash) if rewritten else None
        rewritten.append(hashchain.link(head, e.time, e.actor, e.action, e.object, e.details))
    result = hashchain.verify(rewritten, [checkpoint(entries[3])], sign)
    assert not result.ok and result.first_bad_seq == 4 and "checkpoint" in (result.reason or "")


def test_bad_signature_is_detected() -> None:
    entries = chain(3)
    result = hashchain.verify(entries, [checkpoint(entries[1], good=False)], sign)
    assert not result.ok and result.first_bad_seq == 2


def test_hash_is_independent_of_key_order_and_timezone() -> None:
    t_utc = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
    t_other = t_utc.astimezone(timezone(timedelta(hours=2)))
    a = hashchain.entry_hash(1, t_utc, "x", "y", "z", {"a": 1, "b": 2}, hashchain.GENESIS)
    b = hashchain.entry_hash(1, t_other, "x", "y", "z", {"b": 2, "a": 1}, hashchain.GENESIS)
    assert a == b
