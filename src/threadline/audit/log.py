"""Append-only, hash-chained audit log over the metadata store.

``record`` never opens its own transaction: it writes into the caller's WriteTransaction,
so the mutation and its audit entry commit together or not at all.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from threadline import ports
from threadline.domain import hashchain

_PAGE = 2000


class AuditLog:
    def __init__(self, signer: ports.Signer, clock: ports.Clock, *, checkpoint_every: int = 100) -> None:
        self._signer = signer
        self._clock = clock
        self._checkpoint_every = max(1, checkpoint_every)

    def record(self, tx: ports.WriteTransaction, actor: str, action: str, obj: str,
               details: Mapping[str, Any] | None = None) -> hashchain.AuditEntry:
        entry = hashchain.link(tx.audit_head(), self._clock.now(), actor, action, obj, dict(details or {}))
        tx.append_audit(entry)
        if entry.seq % self._checkpoint_every == 0:
            self._sign(tx, entry.seq, entry.hash)
        return entry

    def checkpoint(self, tx: ports.WriteTransaction) -> hashchain.Checkpoint | None:
        """Sign the current head now (e.g. at shutdown); None when the log is empty or already signed."""
        head = tx.audit_head()
        if head is None or any(c.seq == head[0] for c in tx.audit_checkpoints()[-1:]):
            return None
        return self._sign(tx, *head)

    def _sign(self, tx: ports.WriteTransaction, seq: int, digest: str) -> hashchain.Checkpoint:
        checkpoint = hashchain.Checkpoint(
            seq=seq, hash=digest, time=self._clock.now(), key_id=self._signer.key_id,
            signature=self._signer.sign(hashchain.checkpoint_message(seq, digest)))
        tx.add_checkpoint(checkpoint)
        return checkpoint

    def verify(self, store: ports.MetadataStore) -> hashchain.Verification:
        """Check the whole chain in one consistent snapshot of the store."""
        with store.reading() as tx:
            head = tx.audit_head() or (0, hashchain.GENESIS)
            return hashchain.verify(_entries(tx), tx.audit_checkpoints(), self._check_signature, head)

    def _check_signature(self, checkpoint: hashchain.Checkpoint) -> bool:
        return checkpoint.key_id == self._signer.key_id and self._signer.verify(
            hashchain.checkpoint_message(checkpoint.seq, checkpoint.hash), checkpoint.signature)

    def entries(self, store: ports.MetadataStore, *, after: int = 0) -> Iterator[hashchain.AuditEntry]:
        """Every entry after ``after`` in order, read page by page."""
        while True:
            with store.reading() as tx:
                page = tx.audit_entries(after=after, limit=_PAGE)
            yield from page
            if len(page) < _PAGE:
                return
            after = page[-1].seq


def _entries(tx: ports.ReadTransaction) -> Iterator[hashchain.AuditEntry]:
    after = 0
    while True:
        page = tx.audit_entries(after=after, limit=_PAGE)
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].seq
