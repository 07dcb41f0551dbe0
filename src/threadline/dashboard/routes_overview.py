"""The overview: is everything deployed, healthy and quiet, and what waits for people."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from starlette.responses import Response

from threadline.bootstrap import Services
from threadline.dashboard import web
from threadline.domain import models
from threadline.domain.access import Permission

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class DeploymentRow:
    record: models.DeploymentRecord
    firing: tuple[models.MonitorState, ...]


@router.get("/")
def overview(request: Request, viewer: web.SignedIn) -> Response:
    viewer.actor.require(Permission.READ)
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        rows = [DeploymentRow(record, tuple(s for s in tx.monitor_states(record.name, record.environment)
                                            if s.status == "firing"))
                for record in tx.deployments(None) if record.spec]
        open_reviews = (tx.count_review_tasks(queue=None, status="open")
                        if viewer.can(Permission.READ_SENSITIVE) else None)
    verification = services.audit.verify(services.store) if viewer.can(Permission.READ_AUDIT) else None
    return web.render(request, "overview.html", viewer=viewer, rows=rows, open_reviews=open_reviews,
                      verification=verification, firing=sum(len(r.firing) for r in rows))
