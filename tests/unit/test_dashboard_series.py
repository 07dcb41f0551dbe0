"""Chart specs of the deployment page: windows in, the JSON that charts.js draws out."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from threadline.dashboard import series
from threadline.monitoring import accuracy, drift, histograms, latency
from threadline.monitoring.service import DriftResult, WindowReport

T0 = datetime(2024, 5, 17, 10, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def report(index: int, durations: list[float], ok: list[bool], quality: accuracy.Quality | None = None
           ) -> WindowReport:
    levels = latency.service_levels(np.asarray(durations, dtype=float), np.asarray(ok, dtype=bool))
    return WindowReport(T0 + index * HOUR, T0 + (index + 1) * HOUR, levels, quality)


def test_windows_are_lines_over_unix_seconds_with_gaps_where_a_window_says_nothing() -> None:
    reports = [report(0, [10, 20, 30], [True, True, False]), report(1, [], [])]
    x = [int(T0.timestamp()), int((T0 + HOUR).timestamp())]
    traffic = series.traffic(reports)
    assert traffic == {"kind": "lines", "time": True, "x": x, "xLabel": "window start",
                       "yLabel": "requests per window", "series": [{"label": "requests", "values": [3, 0]}]}
    assert series.error_rate(reports)["series"][0]["values"] == [pytest.approx(1 / 3), None]
    lines = {s["label"]: s["values"] for s in series.latency(reports)["series"]}
    assert lines == {"p50": [15.0, None], "p95": [pytest.approx(19.5), None], "p99": [pytest.approx(19.9), None]}


def test_accuracy_for_classifiers_errors_for_regressors_and_nothing_without_labels() -> None:
    unlabelled = report(0, [1], [True])
    assert series.quality([unlabelled]) is None and series.quality_kind([unlabelled]) is None
    classified = report(1, [1], [True], accuracy.classification(["a", "b", "a"], ["a", "b", "b"]))
    spec = series.quality([unlabelled, classified])
    assert spec is not None and spec["yLabel"] == "accuracy"
    assert spec["series"] == [{"label": "accuracy", "values": [None, pytest.approx(2 / 3)]}]
    regressed = report(2, [1], [True], accuracy.regression([1.0, 2.0], [1.5, 2.5]))
    spec = series.quality([unlabelled, regressed])
    assert spec is not None and series.quality_kind([regressed]) == "regression"
    assert spec["series"] == [{"label": "mae", "values": [None, 0.5]}, {"label": "rmse", "values": [None, 0.5]}]


def result(index: int, *features: drift.FeatureDrift) -> DriftResult:
    return DriftResult("d", "m", 1, T0 + index * HOUR, T0 + (index + 1) * HOUR, 100, drift.dataset(features), ())


def test_drift_over_time_has_a_line_per_feature_and_the_shared_threshold() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=500)
    first = result(0, drift.numeric(reference, rng.normal(size=200), method="ks", feature="age"))
    second = result(1, drift.numeric(reference, rng.normal(3, 1, size=200), method="ks", feature="age"),
                    drift.numeric(reference, rng.normal(size=200), method="ks", feature="income"))
    spec = series.drift_over_time([first, second])
    lines = {s["label"]: s["values"] for s in spec["series"]}
    assert spec["yLabel"] == "ks p-value" and spec["x"] == [int(T0.timestamp()), int((T0 + HOUR).timestamp())]
    assert lines["age"][0] > 0.05 > lines["age"][1] and lines["income"][0] is None
    assert lines["threshold (0.05)"] == [0.05, 0.05]
    mixed = result(2, drift.numeric(reference, rng.normal(size=200), method="psi", feature="age"),
                   drift.numeric(reference, rng.normal(size=200), method="ks", feature="income"))
    spec = series.drift_over_time([mixed])
    assert spec["yLabel"] == "drift statistic" and [s["label"] for s in spec["series"]] == ["age", "income"]


def test_a_histogram_is_two_bar_series_over_numbered_bins() -> None:
    chart = histograms.categorical({"gold": 3, "silver": 1}, {"gold": 1, "silver": 1, "new": 2}, feature="plan")
    spec = series.histogram(chart)
    assert spec["kind"] == "bars" and spec["x"] == [1, 2, 3] and spec["time"] is False
    assert spec["series"] == [{"label": "reference", "values": [0.75, 0.25, 0.0]},
                              {"label": "current", "values": [0.25, 0.25, 0.5]}]


@pytest.mark.parametrize("age, span, width", [
    (None, 86_400, 3600), (3 * 86_400, 86_400, 3600), (5 * 3600, 5 * 3600, 900), (100 * 60, 100 * 60, 300),
    (30, 900, 60),
])
def test_the_default_span_follows_a_young_deployment(age: float | None, span: float, width: int) -> None:
    assert series.default_span(age) == span
    assert series.default_width(span) == width


def test_a_day_long_span_stops_at_daily_windows_and_widths_read_back() -> None:
    assert series.default_width(30 * 86_400) == 86_400
    assert [series.duration_text(s) for s in (60, 5400, 3600, 86_400, 90)] == ["1m", "90m", "1h", "1d", "90s"]
