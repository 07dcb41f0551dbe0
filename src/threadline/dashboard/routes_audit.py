"""Audit: the entries with the chain's verification, and the compliance and readiness reports.

The entries page is for auditors (the API's ``read-audit``): newest first, filtered like
``threadline audit list`` (actor; action, a family when it ends with ``.``; object and
everything below it), with the verification of the whole chain above them, because a filtered
page means nothing if the log was edited. The reports are the API's (``read``): the compliance
report of a model version, optionally under one of the deployments the agent knows, and the
readiness checklist of such a deployment. They are rendered here from the report objects:
``report_render``'s HTML is a standalone page with inline styles, which this CSP refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from threadline.bootstrap import Services
from threadline.dashboard import audit_paging, web
from threadline.domain import errors, hashchain
from threadline.domain.access import Permission
from threadline.gitops import spec as deployment_spec
from threadline.governance import compliance

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
MODEL_CHOICES = 200  # models offered in the compliance form's suggestions


@dataclass(frozen=True)
class EntryRow:
    entry: hashchain.AuditEntry
    details: str  # compact JSON


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/audit")
def audit_page(request: Request, viewer: web.SignedIn, actor: str | None = Query(None, max_length=63),
               action: str | None = Query(None, max_length=63),
               object_: str | None = Query(None, alias="object", max_length=255),
               before: int | None = Query(None, ge=1), after: int | None = Query(None, ge=0)) -> Response:
    viewer.actor.require(Permission.READ_AUDIT)
    if before is not None and after is not None:
        raise errors.InvalidInput("page with before or after, not both", field="before")
    services = _services(request)
    query = {name: value for name, value in (("actor", actor), ("action", action), ("object", object_)) if value}
    who, what, below = query.get("actor"), query.get("action"), query.get("object")
    verification = services.audit.verify(services.store)
    with services.store.reading() as tx:
        def fetch(*, after: int, before: int | None, newest_first: bool, limit: int) -> list[hashchain.AuditEntry]:
            return tx.audit_entries(after=after, before=before, newest_first=newest_first, limit=limit, actor=who,
                                    action=what, object_prefix=below)

        found = audit_paging.page(fetch, limit=PAGE_SIZE, before=before, after=after)
        total = tx.count_audit_entries(actor=who, action=what, object_prefix=below)

    def link(**bound: int) -> str:
        return "/audit?" + urlencode({**query, **bound})

    return web.render(
        request, "audit.html", viewer=viewer, verification=verification, key_id=services.signer.key_id,
        rows=[EntryRow(entry, orjson.dumps(entry.details, option=orjson.OPT_SORT_KEYS).decode())
              for entry in found.entries], total=total, query=query, paged=before is not None or after is not None,
        newest=link(), newer=link(after=found.newer_after) if found.newer_after is not None else None,
        older=link(before=found.older_before) if found.older_before is not None else None)


@router.get("/audit/compliance")
def compliance_page(request: Request, viewer: web.SignedIn, model: str | None = Query(None, max_length=63),
                    version: str | None = Query(None, max_length=63),
                    framework: str | None = Query(None, max_length=63),
                    deployment: str | None = Query(None, max_length=127)) -> Response:
    """Pick a version (and optionally the deployment it runs under); see the controls it meets."""
    viewer.actor.require(Permission.READ)
    if framework and framework not in compliance.FRAMEWORKS:
        raise errors.InvalidInput(f"unknown framework {framework!r}: expected one of "
                                  f"{', '.join(compliance.FRAMEWORKS)}", field="framework")
    services = _services(request)
    report = None
    if model:
        report = services.reports.compliance(model, version or "latest",
                                             _deployment(services, deployment) if deployment else None)
    controls = report.controls if report else ()
    sections = [(name, [c for c in controls if c.framework == name]) for name in compliance.FRAMEWORKS
                if not framework or name == framework]
    chosen = {"model": model or "", "version": version or "latest", "framework": framework or "",
              "deployment": deployment or ""}
    return web.render(
        request, "report_compliance.html", viewer=viewer, report=report,
        sections=[(name, found) for name, found in sections if found], frameworks=compliance.FRAMEWORKS,
        models=[m.name for m in services.registry.list_models(limit=MODEL_CHOICES).items],
        deployments=_deployment_choices(services), chosen=chosen)


@router.get("/audit/readiness")
def readiness_page(request: Request, viewer: web.SignedIn,
                   deployment: str | None = Query(None, max_length=127)) -> Response:
    """The production readiness checklist of a deployment the agent applied (``ENVIRONMENT/NAME``)."""
    viewer.actor.require(Permission.READ)
    services = _services(request)
    checklist = services.reports.readiness(_deployment(services, deployment)) if deployment else None
    return web.render(request, "report_readiness.html", viewer=viewer, checklist=checklist,
                      deployments=_deployment_choices(services), chosen=deployment or "")


def _deployment_choices(services: Services) -> list[str]:
    """``ENVIRONMENT/NAME`` of every deployment whose spec the agent holds."""
    with services.store.reading() as tx:
        return sorted(f"{record.environment}/{record.name}" for record in tx.deployments() if record.spec)


def _deployment(services: Services, key: str) -> deployment_spec.ModelDeployment:
    """The spec the agent last applied for ``ENVIRONMENT/NAME``."""
    environment, slash, name = key.partition("/")
    if not slash or not environment or not name:
        raise errors.InvalidInput(f"{key!r} is not ENVIRONMENT/NAME of a deployment", field="deployment")
    with services.store.reading() as tx:
        record = tx.get_deployment(name, environment)
    if not record.spec:
        raise errors.NotFound(f"deployment {name!r} in environment {environment!r} was removed from Git")
    return deployment_spec.ModelDeployment.model_validate(dict(record.spec), by_alias=True, by_name=False)
