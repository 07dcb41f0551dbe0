"""The audit log's tamper evidence: a SHA-256 hash chain plus signed checkpoints.

Each entry's hash covers a canonical JSON encoding of its content, its sequence number,
its timestamp and the previous entry's hash, so editing, deleting or reordering any entry
breaks every later link. Checkpoints sign (seq, hash) with a key the database does not hold,
so rewriting the whole chain is detected too. Verification is a pure function over the
entries, so it can run on an export far from the database.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: datetime
    actor: str
    action: str
    object: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    time: datetime
    key_id: str
    signature: bytes


@dataclass(frozen=True)
class Verification:
    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    reason: str | None = None


def canonical_json(value: Any) -> str:
    """Key-sorted, compact, UTF-8 JSON: the one encoding that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(time: datetime) -> str:
    """UTC, microsecond precision, always the same width."""
    if time.tzinfo is None:
        time = time.replace(tzinfo=timezone.utc)
    return time.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(seq: int, time: datetime, actor: str, action: str, obj: str,
               details: Mapping[str, Any], prev_hash: str) -> str:
    body = canonical_json({
        "seq": seq, "time": format_time(time), "actor": actor, "action": action,
        "object": obj, "details": details, "prev_hash": prev_hash,
    })
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def link(head: tuple[int, str] | None, time: datetime, actor: str, action: str, obj: str,
         details: Mapping[str, Any]) -> AuditEntry:
    """Build the entry that follows the chain head (seq, hash); None for the first entry."""
    seq = 1 if head is None else head[0] + 1
    prev_hash = GENESIS if head is None else head[1]
    digest = entry_hash(seq, time, actor, action, obj, details, prev_hash)
    return AuditEntry(seq, time, actor, action, obj, details, prev_hash, digest)


def checkpoint_message(seq: int, digest: str) -> bytes:
    return f"threadline-audit-checkpoint:{seq}:{digest}".encode("ascii")


def verify(entries: Iterable[AuditEntry], checkpoints: Iterable[Checkpoint],
           check_signature: Callable[[Checkpoint], bool],
           head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain in stored order and report the first break.

    ``head`` is the (seq, hash) the store recorded for its newest entry; it detects entries
    deleted from the end, which no later link could reveal.
    """
    by_seq = {c.seq: c for c in checkpoints}
    seen_checkpoints = 0
    expected_seq, prev_hash, count = 1, GENESIS, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            what = "deleted" if entry.seq > expected_seq else "reordered or duplicated"
            return Verification(False, count, seen_checkpoints, expected_seq,
                                f"entry {expected_seq} is missing: entries were {what} (found {entry.seq})")
        if entry.prev_hash != prev_hash:
            return Verification(False, count, seen_checkpoints, entry.seq,
                                "link to the previous entry is broken: entries were reordered or removed")
        recomputed = entry_hash(entry.seq, entry.time, entry.actor, entry.action, entry.object,
                                entry.details, entry.prev_hash)
        if recomputed != entry.hash:
            return Verification(False, count, seen_checkpoints, entry.seq,
                                "content does not match its hash: the entry was edited")
        checkpoint = by_seq.get(entry.seq)
        if checkpoint is not None:
            seen_checkpoints += 1
            if checkpoint.hash != entry.hash or not check_signature(checkpoint):
                return Verification(False, count, seen_checkpoints, entry.seq,
                                    "checkpoint signature does not match the chain: the chain was rewritten "
                                    "or the checkpoint forged")
        prev_hash = entry.hash
        expected_seq += 1
    last_seq = expected_seq - 1
    beyond = [seq for seq in by_seq if seq > last_seq]
    if beyond:
        return Verification(False, count, seen_checkpoints, last_seq + 1,
                            f"a signed checkpoint covers entry {min(beyond)}, which is gone: entries were deleted")
    if head is not None and head != (last_seq, prev_hash if last_seq else GENESIS):
        return Verification(False, count, seen_checkpoints, last_seq + 1,
                            f"the chain head records entry {head[0]}, the log ends at {last_seq}: "
                            "entries were deleted from the end")
    return Verification(True, count, seen_checkpoints)
