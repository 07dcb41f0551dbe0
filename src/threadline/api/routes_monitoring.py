"""Monitoring routes: drift against the reference, service levels and quality per window,
ground-truth labels, and the alert and retraining event log."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from threadline.api.auth import needs
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import errors
from threadline.domain.access import Permission
from threadline.gitops import values
from threadline.monitoring import report_html
from threadline.monitoring.feedback import MAX_BATCH, LabelItem
from threadline.monitoring.service import DriftResult

router = APIRouter(prefix="/api/v1", tags=["monitoring"])


def drift_json(result: DriftResult) -> dict[str, Any]:
    data = result.dataset
    return {"deployment": result.deployment, "model": result.model, "version": result.version,
            "from": result.start, "to": result.end, "rows": result.rows, "drifted": data.drifted,
            "drifted_share": data.drifted_share, "share_threshold": data.share, "no_data": list(data.no_data),
            "features": [dataclasses.asdict(f) for f in data.features], "problems": list(result.problems),
            "histograms": {name: dataclasses.asdict(h) for name, h in result.histograms.items()}}


@router.get("/drift/{deployment}")
def get_drift(request: Request, actor: needs(Permission.READ_SENSITIVE), deployment: str,
              window: str = Query("1h", max_length=16, description="The last span: 30m, 1h, 24h ..."),
              start: datetime | None = Query(None, alias="from"), end: datetime | None = Query(None, alias="to"),
              environment: str | None = Query(None, max_length=63),
              histograms: bool = Query(False, description="Add reference-against-current histograms per feature"),
              format: Literal["json", "html"] = Query("json", description="html: a self-contained report page")
              ) -> Response:
    """Per-feature drift of the deployment's logged traffic in a window against its reference."""
    start, end = _span(window, start, end)
    services: Services = request.app.state.services
    result = services.monitoring.drift(actor, deployment, start, end, environment=environment,
                                       histograms=histograms or format == "html")
    if format == "html":
        return HTMLResponse(report_html.render(
            f"Drift of {result.deployment}", {
                "deployment": result.deployment, "environment": environment, "model": result.model,
                "version": result.version, "start": result.start.isoformat(), "end": result.end.isoformat(),
                "rows": result.rows, "problems": list(result.problems), "dataset": result.dataset},
            result.dataset.features, result.histograms))
    return JSON(drift_json(result))


@router.get("/monitoring/{deployment}/windows")
def get_windows(request: Request, actor: needs(Permission.READ_SENSITIVE), deployment: str,
                width: str = Query("1h", max_length=16, description="Width of each window: 5m, 1h ..."),
                window: str = Query("24h", max_length=16, description="The last span covered"),
                start: datetime | None = Query(None, alias="from"),
                end: datetime | None = Query(None, alias="to")) -> JSON:
    """Service levels (p50/p95/p99, error rate) and model quality from labels, per window."""
    start, end = _span(window, start, end)
    services: Services = request.app.state.services
    reports = services.monitoring.windows(actor, deployment, start, end, timedelta(seconds=_duration(width, "width")))
    return JSON({"deployment": deployment, "windows": [report.to_json() for report in reports]})


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prediction_id: str = Field(min_length=1, max_length=64)
    label: str | int | float | bool


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    labels: list[LabelIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.post("/deployments/{deployment}/feedback")
def post_feedback(request: Request, actor: needs(Permission.WRITE_FEEDBACK), deployment: str,
                  body: FeedbackIn) -> JSON:
    """Attach ground-truth labels to logged predictions; unknown ids and bad labels are reported."""
    services: Services = request.app.state.services
    result = services.feedback.add(actor, deployment, [LabelItem(item.prediction_id, item.label)
                                                       for item in body.labels])
    return JSON(dataclasses.asdict(result))


@router.get("/monitoring/{deployment}/events")
def get_events(request: Request, actor: needs(Permission.READ), deployment: str,
               environment: str | None = Query(None, max_length=63),
               limit: int = Query(100, ge=1, le=1000)) -> JSON:
    """Alerts fired and resolved, and retraining calls, newest first."""
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        events = tx.monitor_events(deployment=deployment, environment=environment, limit=limit)
    return JSON({"items": [dataclasses.asdict(event) for event in events]})


def _span(window: str, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    if (start is None) != (end is None):
        raise errors.InvalidInput("give both from and to, or neither (then the last window)", field="from")
    if start is None or end is None:
        end = datetime.now(timezone.utc)
        start = end - timedelta(seconds=_duration(window, "window"))
    return _utc(start), _utc(end)


def _duration(text: str, field: str) -> float:
    try:
        return values.parse_duration(text)
    except ValueError as exc:
        raise errors.InvalidInput(str(exc), field=field) from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
