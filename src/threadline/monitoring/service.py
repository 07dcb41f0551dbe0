"""Drift of a deployment's traffic against its model version's reference (use case).

The window's rows come from the prediction log, one feature column at a time; the reference is
the version's training-data profile (quantile bin edges, category frequencies) and its row
sample (for KS and Wasserstein, which need values). The statistics are ``monitoring.drift``'s.
Reading the log is a sensitive read: it is audited.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, names
from threadline.gitops import spec as deployment_spec
from threadline.monitoring import accuracy, drift, latency
from threadline.monitoring import histograms as histogram_module
from threadline.monitoring.feedback import task_of
from threadline.monitoring.log_location import LogLocation
from threadline.monitoring.window import Window
from threadline.serving import predlog_files

NUMERIC_ONLY = ("ks", "wasserstein")
CATEGORICAL_ONLY = ("chisquare",)


@dataclass(frozen=True)
class DriftResult:
    deployment: str
    model: str
    version: int
    start: datetime
    end: datetime
    rows: int
    dataset: drift.DatasetDrift
    problems: tuple[str, ...]
    histograms: Mapping[str, histogram_module.Histogram] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class WindowReport:
    """Service levels and model quality of one window of a deployment's traffic."""

    start: datetime
    end: datetime
    levels: latency.ServiceLevels
    quality: accuracy.Quality | None  # None: the window holds no labelled prediction

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "levels": dataclasses.asdict(self.levels),
                "quality": None if self.quality is None else {
                    "kind": self.quality.kind, "count": self.quality.count,
                    "metrics": dict(self.quality.metrics), "notes": list(self.quality.notes)}}


MAX_WINDOWS = 500
SETTLED = timedelta(minutes=2)  # a window this long past its end gets no more log records: keep its profile


class Monitoring:
    def __init__(self, store: ports.MetadataStore, artifacts: ports.ArtifactStore, audit: AuditLog,
                 log: LogLocation, clock: ports.Clock) -> None:
        self._store = store
        self._artifacts = artifacts
        self._audit = audit
        self.log = log
        self._clock = clock

    def windows(self, actor: access.Actor, deployment: str, start: datetime, end: datetime,
                width: timedelta) -> list[WindowReport]:
        """Service levels and quality per window of ``width`` in [start, end), oldest first.

        Windows are aligned to multiples of ``width`` since the epoch, so every caller (the
        dashboard, the alert rules) sees the same windows and the kept profiles are shared.
        """
        actor.require(access.Permission.READ_SENSITIVE)
        deployment = names.model_name(deployment, field="deployment")
        if width.total_seconds() < 1:
            raise errors.InvalidInput("windows are at least one second wide", field="width")
        if end <= start:
            raise errors.InvalidInput("the span ends before it starts", field="to")
        bounds = aligned(start, end, width, limit=MAX_WINDOWS)
        with self._store.writing() as tx:
            self._audit.record(tx, actor.name, "predictions.read", f"deployment/{deployment}", {
                "from": start.isoformat(), "to": end.isoformat(), "purpose": "service levels and quality"})
        return [self.window(deployment, a, b) for a, b in bounds]

    def window(self, deployment: str, start: datetime, end: datetime) -> WindowReport:
        """One window's report, from its kept profiles when it has settled (internal: no audit)."""
        settled = end + SETTLED <= self._clock.now()
        with self._store.reading() as tx:
            levels_body = tx.window_profile(deployment, "levels", start, end) if settled else None
            quality_body = tx.window_profile(deployment, "quality", start, end) if settled else None
        levels = latency.ServiceLevels(**levels_body) if levels_body else self._levels(deployment, start, end)
        if quality_body is not None:
            quality = None if quality_body.get("kind") is None else accuracy.Quality(
                quality_body["kind"], quality_body["count"], quality_body["metrics"], tuple(quality_body["notes"]))
        else:
            quality = self._quality(deployment, start, end)
        if settled and (levels_body is None or quality_body is None):
            with self._store.writing() as tx:
                now = self._clock.now()
                tx.put_window_profile(deployment, "levels", start, end, dataclasses.asdict(levels), time=now)
                tx.put_window_profile(deployment, "quality", start, end, {"kind": None} if quality is None else {
                    "kind": quality.kind, "count": quality.count, "metrics": dict(quality.metrics),
                    "notes": list(quality.notes)}, time=now)
        return WindowReport(start, end, levels, quality)

    def _levels(self, deployment: str, start: datetime, end: datetime) -> latency.ServiceLevels:
        window = Window.of(self.log, deployment, start, end)
        latencies = window.numbers("latency_ms")
        status = window.column("status")
        if latencies is None or status is None:
            return latency.service_levels(np.zeros(0), np.zeros(0, dtype=bool))
        ok = pc.equal(status.cast(pa.string()), "ok").to_numpy(zero_copy_only=False)
        return latency.service_levels(latencies, ok)

    def _quality(self, deployment: str, start: datetime, end: datetime) -> accuracy.Quality | None:
        with self._store.reading() as tx:
            labels = {item.prediction_id: item.label for item in tx.feedback(deployment, start, end)}
        if not labels:
            return None
        table = Window.of(self.log, deployment, start, end).matching(["outputs", "model", "version"],
                                                                             set(labels))
        if table.num_rows == 0 or "outputs" not in table.column_names:
            return None
        (model, version), _ = Counter(zip(table["model"].to_pylist(), table["version"].to_pylist())).most_common(1)[0]
        with self._store.reading() as tx:
            signature = tx.get_version(model, int(version)).signature
        outputs = [orjson.loads(text) for text in table["outputs"].to_pylist()]
        actual = [labels[pid] for pid in table["prediction_id"].to_pylist()]
        if task_of(signature) == "regression":
            name = signature.outputs[0].name if signature.outputs else "prediction"
            return accuracy.regression(actual, [float(out[name]) for out in outputs])
        predicted = [out.get("label") for out in outputs]
        probabilities = None
        if signature.classes is not None and all("probabilities" in out for out in outputs):
            probabilities = np.asarray([out["probabilities"] for out in outputs], dtype=float)
        return accuracy.classification(actual, predicted, probabilities, signature.classes)

    def drift(self, actor: access.Actor, deployment: str, start: datetime, end: datetime, *,
              environment: str | None = None, histograms: bool = False) -> DriftResult:
        """Per-feature drift of ``deployment``'s traffic in [start, end) (an audited read of the log)."""
        actor.require(access.Permission.READ_SENSITIVE)
        deployment = names.model_name(deployment, field="deployment")
        if end <= start:
            raise errors.InvalidInput("the window ends before it starts", field="to")
        with self._store.writing() as tx:
            self._audit.record(tx, actor.name, "predictions.read", f"deployment/{deployment}", {
                "from": start.isoformat(), "to": end.isoformat(), "purpose": "drift"})
        return self.drift_of(deployment, start, end, self.settings(deployment, environment), histograms=histograms)

    def drift_of(self, deployment: str, start: datetime, end: datetime, settings: deployment_spec.Drift, *,
                 histograms: bool = False) -> DriftResult:
        """The computation behind ``drift``, for the alert rules (the control plane's own reads).

        A settled window's result is kept (per method and threshold), so the alert rules and the
        dashboards compute each window once; histograms are always computed fresh.
        """
        chosen = f"{settings.method}:{settings.threshold}".encode()
        kind = "drift-" + hashlib.sha256(chosen).hexdigest()[:10]  # one kept result per method and threshold
        settled = end + SETTLED <= self._clock.now() and not histograms
        if settled:
            with self._store.reading() as tx:
                kept = tx.window_profile(deployment, kind, start, end)
            if kept is not None:
                return _drift_from_json(kept)
        result = self._compute_drift(deployment, start, end, settings, histograms)
        if settled:
            with self._store.writing() as tx:
                tx.put_window_profile(deployment, kind, start, end, _drift_to_json(result), time=self._clock.now())
        return result

    def _compute_drift(self, deployment: str, start: datetime, end: datetime, settings: deployment_spec.Drift,
                       histograms: bool) -> DriftResult:
        window = Window.of(self.log, deployment, start, end)
        served = window.column("version")
        models = window.column("model")
        if served is None or models is None or len(served) == 0:
            raise errors.NotFound(f"deployment {deployment!r} logged no predictions between {start.isoformat()} and "
                                  f"{end.isoformat()}: no data, so no drift to report")
        (model, version), _ = Counter(zip(models.to_pylist(), served.to_pylist())).most_common(1)[0]
        with self._store.reading() as tx:
            profile = tx.get_profile(model, int(version))
        if profile is None:
            raise errors.NotFound(f"{model}@{version} was registered without training data: there is no reference "
                                  "to compare with")
        sample = self._sample(profile)
        charts: dict[str, histogram_module.Histogram] = {}
        features = [self._feature(window, name, column, sample, settings, charts if histograms else None)
                    for name, column in profile["columns"].items()]
        return DriftResult(deployment, model, int(version), start, end, len(served), drift.dataset(features),
                           tuple(window.problems), charts)

    def settings(self, deployment: str, environment: str | None) -> deployment_spec.Drift:
        """The drift settings of the deployment's spec, when the GitOps agent knows it."""
        with self._store.reading() as tx:
            records = [r for r in tx.deployments(environment) if r.name == deployment and r.spec]
        if len(records) == 1:
            body = deployment_spec.ModelDeployment.model_validate(dict(records[0].spec), by_alias=True,
                                                                   by_name=False).spec
            if body.monitoring.drift is not None:
                return body.monitoring.drift
        return deployment_spec.Drift()

    def _sample(self, profile: Mapping[str, Any]) -> Any:
        digest = (profile.get("sample") or {}).get("digest")
        if not digest:
            return None
        data = b"".join(self._artifacts.read(digest))
        return pq.ParquetFile(io.BytesIO(data))

    def _feature(self, window: Window, name: str, column: Mapping[str, Any], sample: Any,
                 settings: deployment_spec.Drift,
                 charts: dict[str, histogram_module.Histogram] | None) -> drift.FeatureDrift:
        log_column = predlog_files.column_name(name)
        method, threshold = settings.method, settings.threshold
        if column["kind"] == "numeric":
            if method in CATEGORICAL_ONLY:
                method, threshold = None, None
            current = window.numbers(log_column)
            if current is None:
                return _missing(name, "numeric")
            reference = (sample.read(columns=[name])[name].to_numpy(zero_copy_only=False).astype(float)
                         if sample is not None and name in sample.schema_arrow.names else None)
            if reference is None:
                reference = _from_bins(column)
            if charts is not None:
                charts[name] = histogram_module.numeric(np.asarray(column["bin_edges"], dtype=float),
                                                        column["bin_counts"], current, feature=name)
            return drift.numeric(reference, current, method=method, threshold=threshold,
                                 reference_edges=np.asarray(column["bin_edges"], dtype=float), feature=name)
        if method in NUMERIC_ONLY:
            method, threshold = None, None
        counts = window.counts(log_column)
        if counts is None:
            return _missing(name, "categorical")
        reference = {str(k): int(v) for k, v in column["frequencies"].items()}
        other = int(column.get("other", 0))
        if other:
            reference[OTHER] = other
        known = set(reference)
        folded: dict[str, int] = {}
        for value, count in counts.items():
            key = value if value in known or not other else OTHER
            folded[key] = folded.get(key, 0) + count
        if charts is not None:
            charts[name] = histogram_module.categorical(reference, folded, feature=name)
        return drift.categorical(reference, folded, method=method, threshold=threshold, feature=name)


def _drift_to_json(result: DriftResult) -> dict[str, Any]:
    data = dataclasses.asdict(result)
    data.pop("histograms")
    data["start"], data["end"] = result.start.isoformat(), result.end.isoformat()
    return data


def _drift_from_json(data: Mapping[str, Any]) -> DriftResult:
    dataset = dict(data["dataset"])
    dataset["features"] = tuple(drift.FeatureDrift(**feature) for feature in dataset["features"])
    dataset["no_data"] = tuple(dataset["no_data"])
    return DriftResult(data["deployment"], data["model"], data["version"], datetime.fromisoformat(data["start"]),
                       datetime.fromisoformat(data["end"]), data["rows"], drift.DatasetDrift(**dataset),
                       tuple(data["problems"]))


def aligned(start: datetime, end: datetime, width: timedelta, *,
            limit: int = MAX_WINDOWS) -> list[tuple[datetime, datetime]]:
    """The windows of ``width`` (aligned to the epoch) that overlap [start, end)."""
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    first = epoch + width * ((start - epoch) // width)
    count = -(-(end - first) // width)
    if count > limit:
        raise errors.InvalidInput(f"{count} windows asked for; at most {limit}: widen the windows or shorten "
                                  "the span", field="width")
    return [(first + width * i, first + width * (i + 1)) for i in range(max(count, 0))]


OTHER = "(other)"  # categories past the profile's top values: the profile counts them together


def _missing(name: str, kind: str) -> drift.FeatureDrift:
    return drift.FeatureDrift(feature=name, kind=kind, method="-", statistic=None, threshold=None, drifted=False,
                              reference_size=0, current_size=0, missing=0,
                              detail="feature missing from the log: no data", higher_is_drift=True)


def _from_bins(column: Mapping[str, Any]) -> np.ndarray:
    """Without a row sample, each reference bin stands for its count at its midpoint."""
    edges = np.asarray(column["bin_edges"], dtype=float)
    mids = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else edges
    return np.repeat(mids, np.asarray(column["bin_counts"], dtype=int)[:len(mids)])
