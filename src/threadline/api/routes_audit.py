"""Audit routes: verification, paged entries for export, on-demand checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from threadline.api.auth import Caller
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import hashchain

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def entry_json(entry: hashchain.AuditEntry) -> dict[str, object]:
    return {
        "seq": entry.seq, "time": hashchain.format_time(entry.time), "actor": entry.actor,
        "action": entry.action, "object": entry.object, "details": entry.details,
        "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


@router.get("/verify")
def verify(request: Request, caller: Caller) -> JSON:
    services: Services = request.app.state.services
    result = services.audit.verify(services.store)
    return JSON({"ok": result.ok, "entries": result.entries, "checkpoints": result.checkpoints,
                 "first_bad_seq": result.first_bad_seq, "reason": result.reason,
                 "key_id": services.signer.key_id})


@router.get("/entries")
def entries(request: Request, caller: Caller, after: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> JSON:
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        page = tx.audit_entries(after=after, limit=limit)
    return JSON({"items": [entry_json(e) for e in page],
                 "next_after": page[-1].seq if len(page) == limit else None})


@router.post("/checkpoint")
def checkpoint(request: Request, caller: Caller) -> JSON:
    services: Services = request.app.state.services
    with services.store.writing() as tx:
        signed = services.audit.checkpoint(tx)
    return JSON({"seq": signed.seq if signed else None, "key_id": services.signer.key_id})
