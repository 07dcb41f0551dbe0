"""Context bundles, their keys, and the human review queue."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors, models
from threadline.domain.access import Permission

router = APIRouter(prefix="/api/v1", tags=["review"])
IMPORT_PATH = "/api/v1/bundles/import"


def task_json(task: models.ReviewTask | None) -> dict[str, Any] | None:
    return None if task is None else dataclasses.asdict(task)


@router.post("/bundles", status_code=201)
async def post_bundle(request: Request, actor: needs(Permission.WRITE_BUNDLES)) -> JSON:
    """A serving process hands in an escalated prediction's bundle; stored once, signed here."""
    services: Services = request.app.state.services
    record, fresh = await run_in_threadpool(services.reviews.ingest, actor, await request.body())
    return JSON({"id": record.id, "digest": record.digest, "new": fresh}, status_code=201 if fresh else 200)


@router.post("/bundles/import", status_code=201)
async def import_bundle(request: Request, actor: needs(Permission.WRITE_BUNDLES)) -> JSON:
    """Verify and store an exported bundle file (and the model inside it, if any)."""
    services: Services = request.app.state.services
    limit = services.settings.max_upload_bytes
    workdir = services.settings.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=workdir, prefix="import-", suffix=".tar")
    try:
        size = 0
        with os.fdopen(fd, "wb") as handle:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise errors.PayloadTooLarge(f"a bundle file is at most {limit} bytes")
                handle.write(chunk)
        record, fresh = await run_in_threadpool(services.reviews.import_archive, actor, Path(name))
    finally:
        Path(name).unlink(missing_ok=True)
    return JSON({"id": record.id, "key_id": record.key_id, "digest": record.digest, "new": fresh},
                status_code=201 if fresh else 200)


@router.get("/bundles/{bundle_id}")
def get_bundle(request: Request, actor: needs(Permission.READ_SENSITIVE), bundle_id: str) -> JSON:
    """A bundle with its signature, and its review task (an audited read)."""
    services: Services = request.app.state.services
    view = services.reviews.show(actor, bundle_id)
    record = view.record
    return JSON({"id": record.id, "bundle": orjson.loads(record.body), "signature": record.signature,
                 "key_id": record.key_id, "digest": record.digest, "origin": record.origin,
                 "received_at": record.received_at, "review": task_json(view.task)})


@router.get("/keys/bundles")
def get_bundle_key(request: Request, actor: needs(Permission.READ)) -> JSON:
    """This installation's public key: give it to the installations that import its bundles."""
    services: Services = request.app.state.services
    key_id, pem = services.reviews.public_key()
    return JSON({"key_id": key_id, "public_key": pem})


class TrustIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63)
    public_key: str = Field(min_length=1, max_length=4096)


@router.get("/keys/trusted")
def get_trusted_keys(request: Request, actor: needs(Permission.READ)) -> JSON:
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        keys = tx.trusted_keys()
    return JSON({"items": [dataclasses.asdict(key) for key in keys]})


@router.post("/keys/trusted", status_code=201)
def post_trusted_key(request: Request, actor: needs(Permission.MANAGE_POLICY), body: TrustIn) -> JSON:
    """Accept bundles signed by another installation's key on import."""
    services: Services = request.app.state.services
    return JSON(dataclasses.asdict(services.reviews.trust_key(actor, body.name, body.public_key)), status_code=201)


@router.get("/review")
def list_review(request: Request, actor: needs(Permission.READ_SENSITIVE),
                queue: str | None = Query(None, max_length=63),
                status: Literal["open", "claimed", "resolved"] | None = Query(None),
                limit: int = Query(100, ge=1, le=1000)) -> JSON:
    """Review tasks, oldest first, with the total that match."""
    services: Services = request.app.state.services
    tasks, total = services.reviews.tasks(actor, queue=queue, status=status, limit=limit)
    return JSON({"items": [task_json(task) for task in tasks], "total": total})


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    take_over: bool = False


@router.post("/review/{bundle_id}/claim")
def claim(request: Request, actor: needs(Permission.REVIEW), bundle_id: str, body: ClaimIn | None = None) -> JSON:
    services: Services = request.app.state.services
    take_over = body.take_over if body is not None else False
    return JSON(task_json(services.reviews.claim(actor, bundle_id, take_over=take_over)))


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    decision: Literal["accept", "override"]
    label: str | int | float | bool | None = None
    comment: str = Field("", max_length=4000)


@router.post("/review/{bundle_id}/resolve")
def resolve(request: Request, actor: needs(Permission.REVIEW), bundle_id: str, body: ResolveIn) -> JSON:
    """Close a case: the label (the model's own when accepted) becomes the prediction's feedback."""
    services: Services = request.app.state.services
    return JSON(task_json(services.reviews.resolve(actor, bundle_id, decision=body.decision, label=body.label,
                                                   comment=body.comment)))
