"""Audit routes: verification, paged entries for export, on-demand checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import hashchain
from threadline.domain.access import Permission

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def entry_json(entry: hashchain.AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq, "time": hashchain.format_time(entry.time), "actor": entry.actor,
        "action": entry.action, "object": entry.object, "details": entry.details,
        "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


@router.get("/verify")
def verify(request: Request, actor: needs(Permission.READ_AUDIT)) -> JSON:
    services: Services = request.app.state.services
    result = services.audit.verify(services.store)
    return JSON({"ok": result.ok, "entries": result.entries, "checkpoints": result.checkpoints,
                 "first_bad_seq": result.first_bad_seq, "reason": result.reason,
                 "key_id": services.signer.key_id})


@router.get("/entries")
def entries(request: Request, actor: needs(Permission.READ_AUDIT), after: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
            by: Annotated[str | None, Query(alias="actor", max_length=63)] = None,
            action: Annotated[str | None, Query(max_length=63, description="`approval.` matches a family")] = None,
            object: Annotated[str | None, Query(max_length=255, description="This object and those below it")] = None
            ) -> JSON:
    """Entries in order, filtered by actor, action and object; page with ``after``."""
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        page = tx.audit_entries(after=after, limit=limit, actor=by, action=action, object_prefix=object)
    return JSON({"items": [entry_json(e) for e in page],
                 "next_after": page[-1].seq if len(page) == limit else None})


@router.post("/checkpoint")
def checkpoint(request: Request, actor: needs(Permission.READ_AUDIT)) -> JSON:
    services: Services = request.app.state.services
    with services.store.writing() as tx:
        signed = services.audit.checkpoint(tx)
    return JSON({"seq": signed.seq if signed else None, "key_id": services.signer.key_id})
