"""Monitoring routes: drift of a deployment's traffic against its reference."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Query, Request

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors
from threadline.domain.access import Permission
from threadline.gitops import values
from threadline.monitoring.service import DriftResult

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


def drift_json(result: DriftResult) -> dict[str, Any]:
    data = result.dataset
    return {"deployment": result.deployment, "model": result.model, "version": result.version,
            "from": result.start, "to": result.end, "rows": result.rows, "drifted": data.drifted,
            "drifted_share": data.drifted_share, "share_threshold": data.share, "no_data": list(data.no_data),
            "features": [dataclasses.asdict(f) for f in data.features], "problems": list(result.problems)}


@router.get("/drift/{deployment}")
def get_drift(request: Request, actor: needs(Permission.READ_SENSITIVE), deployment: str,
              window: str = Query("1h", max_length=16, description="The last span: 30m, 1h, 24h ..."),
              start: datetime | None = Query(None, alias="from"), end: datetime | None = Query(None, alias="to"),
              environment: str | None = Query(None, max_length=63)) -> JSON:
    """Per-feature drift of the deployment's logged traffic in a window against its reference."""
    if (start is None) != (end is None):
        raise errors.InvalidInput("give both from and to, or neither (then the last window)", field="from")
    if start is None or end is None:
        try:
            span = values.parse_duration(window)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc), field="window") from None
        end = datetime.now(timezone.utc)
        start = end - timedelta(seconds=span)
    start, end = _utc(start), _utc(end)
    services: Services = request.app.state.services
    return JSON(drift_json(services.monitoring.drift(actor, deployment, start, end, environment=environment)))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
