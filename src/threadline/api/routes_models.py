"""Registry routes: models, versions and aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from threadline.api import dto
from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain.access import Permission
from threadline.registry.requests import NewModel, NewVersion

router = APIRouter(prefix="/api/v1/models", tags=["models"])

# Reads are short indexed queries and run on the event loop: a hop to the thread pool costs
# more than the query. Writes may wait for the writer lock, so they run in the pool (plain def).


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("")
async def list_models(request: Request, actor: needs(Permission.READ), query: str | None = Query(None, max_length=200),
                owner: str | None = Query(None, max_length=63), limit: int = 50,
                cursor: str | None = Query(None, max_length=63)) -> JSON:
    page = _services(request).registry.list_models(query=query, owner=owner, limit=limit, cursor=cursor)
    return JSON(dto.page_json(page, dto.model_json))


@router.post("", status_code=201)
def create_model(request: Request, actor: needs(Permission.WRITE_MODELS), body: dto.ModelIn) -> JSON:
    model = _services(request).registry.create_model(
        actor, NewModel(body.name, body.owner, body.risk_tier, body.description))
    return JSON(dto.model_json(model), status_code=201)


@router.get("/{name}")
async def get_model(request: Request, actor: needs(Permission.READ), name: str) -> JSON:
    registry = _services(request).registry
    data = dto.model_json(registry.get_model(name))
    data["aliases"] = registry.aliases(name)
    return JSON(data)


@router.get("/{name}/versions")
async def list_versions(request: Request, actor: needs(Permission.READ), name: str, limit: int = 50,
                  cursor: Annotated[int | None, Query(ge=0)] = None) -> JSON:
    page = _services(request).registry.list_versions(name, limit=limit, cursor=cursor)
    return JSON(dto.page_json(page, dto.version_json))


@router.post("/{name}/versions", status_code=201)
def register_version(request: Request, actor: needs(Permission.WRITE_MODELS), name: str, body: dto.VersionIn) -> JSON:
    version = _services(request).registry.register_version(actor, NewVersion(
        model=name, artifact_digest=body.artifact_digest, flavor=body.flavor, trusted=body.trusted,
        profile=body.profile, sample_digest=body.sample_digest, metrics=body.metrics, card=body.card,
        lineage=body.lineage.to_domain(), description=body.description, owner=body.owner,
        risk_tier=body.risk_tier))
    return JSON(dto.version_json(version), status_code=201)


@router.get("/{name}/versions/{ref}")
async def get_version(request: Request, actor: needs(Permission.READ), name: str, ref: str) -> JSON:
    """``ref`` is a version number, an alias, or ``latest``."""
    return JSON(dto.version_json(_services(request).registry.get_version(name, ref)))


@router.post("/{name}/versions/{version}/transitions")
def transition(request: Request, actor: needs(Permission.LIFECYCLE), name: str, version: int, body: dto.TransitionIn) -> JSON:
    """Move the version's lifecycle status: ``validate``, ``deprecate`` or ``archive``."""
    moved = _services(request).registry.transition(actor, name, version, body.event)
    return JSON(dto.version_json(moved))


@router.get("/{name}/versions/{ref}/profile")
def get_profile(request: Request, actor: needs(Permission.READ_SENSITIVE), name: str, ref: str) -> JSON:
    """The reference profile of the version's training data (per-column statistics and bins)."""
    return JSON(_services(request).registry.get_profile(actor, name, ref))


@router.get("/{name}/aliases")
async def list_aliases(request: Request, actor: needs(Permission.READ), name: str) -> JSON:
    return JSON(_services(request).registry.aliases(name))


@router.put("/{name}/aliases/{alias}")
def set_alias(request: Request, actor: needs(Permission.MOVE_ALIASES), name: str, alias: str, body: dto.AliasIn) -> JSON:
    previous = _services(request).registry.set_alias(actor, name, alias, body.version)
    return JSON({"model": name, "alias": alias, "version": body.version, "previous": previous})


@router.delete("/{name}/aliases/{alias}")
def delete_alias(request: Request, actor: needs(Permission.MOVE_ALIASES), name: str, alias: str) -> JSON:
    previous = _services(request).registry.delete_alias(actor, name, alias)
    return JSON({"model": name, "alias": alias, "previous": previous})
