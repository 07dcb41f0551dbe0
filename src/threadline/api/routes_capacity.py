"""Capacity routes: measured utilization, right-sizing recommendations and cost reports."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.capacity import cost, recommend
from threadline.domain import errors
from threadline.domain.access import Permission
from threadline.gitops import values

router = APIRouter(prefix="/api/v1/capacity", tags=["capacity"])


def _span(text: str, field: str) -> timedelta:
    try:
        return timedelta(seconds=values.parse_duration(text))
    except ValueError as exc:
        raise errors.InvalidInput(str(exc), field=field) from None


def recommendation_json(result: recommend.Recommendation) -> dict[str, object]:
    data = dataclasses.asdict(result)
    data["cpu"], data["memory"] = recommend.cpu_text(result.cpu_cores), recommend.memory_text(result.memory_bytes)
    data["changes"] = {name: list(pair) for name, pair in result.changes().items()}
    return data


@router.get("/{environment}/{deployment}/recommendation")
def get_recommendation(request: Request, actor: needs(Permission.READ), environment: str, deployment: str,
                       window: str = Query("7d", max_length=16)) -> JSON:
    """CPU, memory, replica bounds and GPU advice from measured usage, with evidence, saving and risk."""
    services: Services = request.app.state.services
    result = services.capacity_service.recommendation(actor, deployment, environment, _span(window, "window"))
    return JSON(recommendation_json(result))


@router.get("/{environment}/{deployment}/utilization")
def get_utilization(request: Request, actor: needs(Permission.READ), environment: str, deployment: str,
                    window: str = Query("1h", max_length=16)) -> JSON:
    """Per-replica, per-minute CPU, memory, GPU and serving figures, oldest first."""
    services: Services = request.app.state.services
    samples = services.capacity_service.samples(actor, deployment, environment, _span(window, "window"))
    return JSON({"items": [dataclasses.asdict(s) for s in samples]})


@router.get("/cost")
def get_cost(request: Request, actor: needs(Permission.READ),
             by: Literal["deployment", "model", "team"] = Query("deployment"),
             since: str = Query("7d", max_length=16), spot: bool = Query(False),
             format: Literal["json", "csv"] = Query("json")) -> Response:
    """Cost, cost per 1,000 predictions and utilization per group, and what recommendations would save."""
    services: Services = request.app.state.services
    rows = services.capacity_service.cost(actor, by=by, since=_span(since, "since"), spot=spot)
    if format == "csv":
        return Response(cost.to_csv(rows), media_type="text/csv")
    return JSON({"by": by, "since": since, "items": [dataclasses.asdict(r) for r in rows],
                 "total": dataclasses.asdict(cost.total(rows)) if rows else None})
