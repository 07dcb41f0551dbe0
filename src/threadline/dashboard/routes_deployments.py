"""A deployment's page: its sync condition, the decisions behind each revision, and how it serves.

The sync part needs READ, as the API's deployment route; traffic, accuracy and drift come from
the prediction log, a sensitive read (READ_SENSITIVE) that the monitoring service checks and
audits on each call, as the API's monitoring routes do. A viewer without it still gets the
sync part and a sentence saying which role shows the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from threadline.api.routes_gitops import deployment_json
from threadline.bootstrap import Services
from threadline.dashboard import series, web
from threadline.domain import access, errors, models
from threadline.domain.access import Permission
from threadline.gitops import planner, state, values
from threadline.monitoring import histograms
from threadline.monitoring.service import DriftResult, WindowReport

router = APIRouter(include_in_schema=False)

HISTORY = 50
EVENTS = 20
MAX_WINDOWS = 200
DRIFT_WINDOWS = 6
"""Drift is computed for at most this many windows (the newest with traffic) per page view; the
service keeps settled windows' results, so a reload reads only the newest one again."""

SENSITIVE_ROLES = sorted(role.value for role in access.PERMISSIONS[Permission.READ_SENSITIVE])


@dataclass(frozen=True)
class Decision:
    """A history entry and the workload it ran, as one line (``scorer@2 90% + scorer@3 10% x2``)."""

    entry: models.HistoryRecord
    workload: str | None


@dataclass(frozen=True)
class Histogram:
    chart: histograms.Histogram
    spec: series.Spec


@dataclass(frozen=True)
class DriftView:
    latest: DriftResult | None        # the newest window with traffic, with its histograms
    over_time: series.Spec | None
    histograms: tuple[Histogram, ...]
    problems: tuple[str, ...]         # why a window has no drift (e.g. a model without a reference)


@dataclass(frozen=True)
class MonitoringView:
    start: datetime
    end: datetime
    width: timedelta
    reports: tuple[WindowReport, ...]
    charts: dict[str, series.Spec]
    quality_kind: str | None
    drift: DriftView

    @property
    def requests(self) -> int:
        return sum(r.levels.count for r in self.reports)

    @property
    def width_text(self) -> str:
        return series.duration_text(self.width.total_seconds())


@router.get("/deployments/{environment}/{name}")
def deployment(request: Request, viewer: web.SignedIn, environment: str, name: str,
               hours: int | None = Query(None, ge=1, le=720, description="The span shown, in hours"),
               width: str | None = Query(None, max_length=16, description="Each window's width: 5m, 1h ...")
               ) -> Response:
    """Everything about one deployment on one page; the monitoring part only for those who may read the log."""
    viewer.actor.require(Permission.READ)
    chosen_width = _width(width)  # a bad width is refused before anything is read
    services: Services = request.app.state.services
    with services.store.reading() as tx:
        record = tx.get_deployment(name, environment)
        history = tx.deployment_history(name, environment, limit=HISTORY)
        states = tx.monitor_states(name, environment)
        events = tx.monitor_events(deployment=name, environment=environment, limit=EVENTS)
    end = datetime.now(timezone.utc)
    span, step = _span(hours, chosen_width, _age(history, end))
    monitoring = (_monitoring(services, viewer.actor, record, end - span, end, step)
                  if viewer.can(Permission.READ_SENSITIVE) else None)
    return web.render(request, "deployment.html", viewer=viewer, record=record, condition=deployment_json(record),
                      usage=services.capacity_service.usage(record), events=events,
                      history=[Decision(h, _workload(h.workload)) for h in history], history_limit=HISTORY,
                      firing=[s for s in states if s.status == "firing"], states=states, monitoring=monitoring,
                      hours=hours, width=width, sensitive_roles=SENSITIVE_ROLES)


def _width(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        seconds = values.parse_duration(text)
    except ValueError as exc:
        raise errors.InvalidInput(str(exc), field="width") from None
    if seconds < 60:
        raise errors.InvalidInput("windows are at least a minute wide", field="width")
    return timedelta(seconds=seconds)


def _span(hours: int | None, width: timedelta | None, age: float | None) -> tuple[timedelta, timedelta]:
    """The span and window width asked for, or the defaults that fit the deployment's age."""
    span = timedelta(hours=hours) if hours is not None else timedelta(seconds=series.default_span(age))
    step = width or timedelta(seconds=series.default_width(span.total_seconds()))
    if span / step > MAX_WINDOWS:
        raise errors.InvalidInput(f"{span / step:.0f} windows asked for; at most {MAX_WINDOWS}: widen the windows "
                                  "or shorten the span", field="width")
    return span, step


def _workload(data: Mapping[str, Any] | None) -> str | None:
    workload = state.workload_from_json(dict(data)) if data else None
    return planner.describe_workload(workload) if workload else None


def _age(history: list[models.HistoryRecord], now: datetime) -> float | None:
    """How long the deployment has had history, when all of it is at hand (None: older than we read)."""
    if not history or len(history) == HISTORY:
        return None
    return (now - history[-1].time).total_seconds()


def _monitoring(services: Services, actor: access.Actor, record: models.DeploymentRecord, start: datetime,
                end: datetime, width: timedelta) -> MonitoringView:
    reports = services.monitoring.windows(actor, record.name, start, end, width)
    charts = {"traffic": series.traffic(reports), "errors": series.error_rate(reports),
              "latency": series.latency(reports)}
    quality = series.quality(reports)
    if quality is not None:
        charts["quality"] = quality
    return MonitoringView(start, end, width, tuple(reports), charts,
                          series.quality_kind(reports), _drift(services, actor, record, reports))


def _drift(services: Services, actor: access.Actor, record: models.DeploymentRecord,
           reports: list[WindowReport]) -> DriftView:
    """Drift of the newest windows with traffic; the newest also gets its histograms."""
    busy = [r for r in reports if r.levels.count][-DRIFT_WINDOWS:]
    results: list[DriftResult] = []
    problems: list[str] = []
    for index, report in enumerate(busy):
        try:
            results.append(services.monitoring.drift(actor, record.name, report.start, report.end,
                                                     environment=record.environment,
                                                     histograms=index == len(busy) - 1))
        except errors.NotFound as exc:  # a window served by a version without a reference: said, not fatal
            problems.append(str(exc))
    latest = results[-1] if results and results[-1].start == busy[-1].start else None
    charts = tuple(Histogram(chart, series.histogram(chart)) for chart in latest.histograms.values()) if latest else ()
    return DriftView(latest, series.drift_over_time(results) if results else None, charts,
                     tuple(dict.fromkeys(problems)))
