"""Monitoring results shaped into the chart specs that ``static/charts.js`` draws (pure).

A spec is ``{kind, x, time, xLabel, yLabel, series: [{label, values}]}``. Lines over time take
x in Unix seconds (each window's start) and None where a window has nothing to say: a window
without traffic has no latency, one without labels has no accuracy, and a gap says so where a
zero would lie. This module also picks the default span and window width of the deployment
page, so a young deployment is not drawn as one point at the end of an empty day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from threadline.monitoring import drift, histograms

if TYPE_CHECKING:
    from threadline.monitoring.service import DriftResult, WindowReport

Spec = dict[str, Any]

DAY = 86_400.0
SHORTEST_SPAN = 900.0
"""A deployment younger than this still gets a quarter of an hour: enough windows to draw a line."""

WIDTHS = (60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400)
"""Window widths a person reads at a glance (1 min ... 1 day), smallest first."""

POINTS = 24
"""Windows per chart by default: one an hour over a day."""

QUALITY_METRICS: Mapping[str, tuple[str, ...]] = {"classification": ("accuracy",), "regression": ("mae", "rmse")}
"""What the accuracy chart draws for each kind of model: a score for classifiers, errors for regressors."""

WINDOW_AXIS = "window start"


def default_span(age_seconds: float | None, longest: float = DAY) -> float:
    """The span to show: the last day, or the deployment's life so far when it is younger."""
    if age_seconds is None:
        return longest
    return min(longest, max(SHORTEST_SPAN, age_seconds))


def default_width(span_seconds: float) -> int:
    """The narrowest readable width that keeps the span to at most ``POINTS`` windows."""
    return next((width for width in WIDTHS if span_seconds / width <= POINTS), WIDTHS[-1])


def duration_text(seconds: float) -> str:
    """A width as the page's width field reads it back: 60 -> "1m", 5400 -> "90m", 86400 -> "1d"."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:g}s"


def traffic(reports: Sequence[WindowReport]) -> Spec:
    """Requests per window (zero is a value here: no traffic is what the window saw)."""
    return _lines(reports, "requests per window", {"requests": [r.levels.count for r in reports]})


def error_rate(reports: Sequence[WindowReport]) -> Spec:
    return _lines(reports, "share of failed requests", {"error rate": [r.levels.error_rate for r in reports]})


def latency(reports: Sequence[WindowReport]) -> Spec:
    """p50, p95 and p99 of the successful requests, in milliseconds."""
    return _lines(reports, "latency (ms)", {name: [getattr(r.levels, name) for r in reports]
                                            for name in ("p50", "p95", "p99")})


def quality_kind(reports: Sequence[WindowReport]) -> str | None:
    """The kind of model the labels judged (that of the newest labelled window), None without labels."""
    labelled = [r.quality for r in reports if r.quality is not None]
    return labelled[-1].kind if labelled else None


def quality(reports: Sequence[WindowReport]) -> Spec | None:
    """Accuracy (classifier) or MAE and RMSE (regressor) per window; None when no label came back."""
    kind = quality_kind(reports)
    if kind is None:
        return None
    names = QUALITY_METRICS[kind]
    series = {name: [r.quality.metrics.get(name) if r.quality is not None and r.quality.kind == kind else None
                     for r in reports] for name in names}
    return _lines(reports, " / ".join(names), series)


def drift_over_time(results: Sequence[DriftResult]) -> Spec:
    """Each feature's drift statistic per window, and the threshold when every feature shares one.

    The statistic is a p-value for ks and chisquare (drift below the threshold) and a distance
    otherwise (drift above it), so the y label names the method when there is only one.
    """
    features: dict[str, list[float | None]] = {}
    for index, result in enumerate(results):
        for feature in result.dataset.features:
            features.setdefault(feature.feature, [None] * len(results))[index] = feature.statistic
    judged = {(f.method, f.threshold) for r in results for f in r.dataset.features if f.statistic is not None}
    series = dict(features)
    y_label = "drift statistic"
    if len(judged) == 1:
        method, threshold = judged.pop()
        y_label = f"{method} {'p-value' if method in drift.P_VALUE_METHODS else 'statistic'}"
        if threshold is not None:
            series[f"threshold ({threshold:g})"] = [threshold] * len(results)
    return {"kind": "lines", "time": True, "x": [_seconds(r.start) for r in results], "xLabel": WINDOW_AXIS,
            "yLabel": y_label, "series": [{"label": label, "values": values} for label, values in series.items()]}


def histogram(chart: histograms.Histogram) -> Spec:
    """Reference against current shares per bin; x is the bin's number, named on the axis by
    ``xTicks`` (and in the table beside the chart)."""
    return {"kind": "bars", "time": False, "x": list(range(1, len(chart.labels) + 1)),
            "xTicks": list(chart.labels), "xLabel": "bin", "yLabel": "share of rows",
            "series": [{"label": "reference", "values": list(chart.reference)},
                       {"label": "current", "values": list(chart.current)}]}


def _lines(reports: Sequence[WindowReport], y_label: str, series: Mapping[str, Sequence[float | int | None]]) -> Spec:
    return {"kind": "lines", "time": True, "x": [_seconds(r.start) for r in reports], "xLabel": WINDOW_AXIS,
            "yLabel": y_label, "series": [{"label": label, "values": list(values)} for label, values in series.items()]}


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())
