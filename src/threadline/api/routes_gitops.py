"""GitOps routes: trigger or preview a sync, list deployments and their history."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import Field

from threadline.api.auth import needs
from threadline.api.dto import Strict
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors, models
from threadline.domain.access import Permission
from threadline.gitops import planner, state

router = APIRouter(prefix="/api/v1", tags=["gitops"])


class SyncIn(Strict):
    dry_run: bool = Field(False, description="Only compute the plan a real pass would execute.")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def action_json(action: planner.Action) -> dict[str, Any]:
    return {"kind": action.kind.value, "deployment": action.key[0], "environment": action.key[1],
            "status": action.status.value, "reason": action.reason,
            "workload": planner.describe_workload(action.workload) if action.workload else None,
            "differences": list(action.differences), "evidence": dict(action.evidence)}


def deployment_json(record: models.DeploymentRecord) -> dict[str, Any]:
    current = state.from_json(dict(record.state))
    return {"name": record.name, "environment": record.environment, "status": record.status, "reason": record.reason,
            "differences": list(record.differences), "commit": record.commit, "updated_at": record.updated_at,
            "endpoints": list(record.endpoints),
            "running": planner.describe_workload(current.applied) if current.applied else None,
            "healthy": planner.describe_workload(current.healthy) if current.healthy else None,
            "spec": dict(record.spec)}


@router.post("/sync")
def sync(request: Request, actor: needs(Permission.DEPLOY), body: SyncIn) -> JSON:
    """Run a GitOps pass now (e.g. from a Git webhook), or with ``dry_run`` print its plan."""
    loop = _services(request).gitops
    if loop is None:
        raise errors.Conflict("no GitOps repository is configured: start `threadline up` with THREADLINE_GITOPS_REPO")
    result = loop.agent.sync(dry_run=body.dry_run)
    return JSON({"commit": result.commit, "dry_run": result.dry_run, "problems": list(result.problems),
                 "failures": list(result.failures), "actions": [action_json(a) for a in result.plan.actions]})


@router.get("/deployments")
def list_deployments(request: Request, actor: needs(Permission.READ),
                     environment: str | None = Query(None, max_length=63)) -> JSON:
    with _services(request).store.reading() as tx:
        found = tx.deployments(environment)
    return JSON({"items": [deployment_json(r) for r in found]})


@router.get("/deployments/{environment}/{name}")
def get_deployment(request: Request, actor: needs(Permission.READ), environment: str, name: str,
                   limit: int = Query(50, ge=1, le=1000)) -> JSON:
    """A deployment's condition and its revision history with the evidence of each decision."""
    with _services(request).store.reading() as tx:
        record = tx.get_deployment(name, environment)
        history = tx.deployment_history(name, environment, limit=limit)
    usage = _services(request).capacity_service.usage(record)
    return JSON({**deployment_json(record), "utilization": usage, "history": [
        {"time": h.time, "commit": h.commit, "action": h.action, "outcome": h.outcome, "reason": h.reason,
         "workload": h.workload, "evidence": dict(h.evidence)} for h in history]})
