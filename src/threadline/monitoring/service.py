"""Drift of a deployment's traffic against its model version's reference (use case).

The window's rows come from the prediction log, one feature column at a time; the reference is
the version's training-data profile (quantile bin edges, category frequencies) and its row
sample (for KS and Wasserstein, which need values). The statistics are ``monitoring.drift``'s.
Reading the log is a sensitive read: it is audited.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow.parquet as pq

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, names
from threadline.gitops import spec as deployment_spec
from threadline.monitoring import drift
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


class Monitoring:
    def __init__(self, store: ports.MetadataStore, artifacts: ports.ArtifactStore, audit: AuditLog,
                 log_root: Path) -> None:
        self._store = store
        self._artifacts = artifacts
        self._audit = audit
        self._log_root = log_root

    def drift(self, actor: access.Actor, deployment: str, start: datetime, end: datetime, *,
              environment: str | None = None) -> DriftResult:
        """Per-feature drift of ``deployment``'s traffic in [start, end)."""
        actor.require(access.Permission.READ_SENSITIVE)
        deployment = names.model_name(deployment, field="deployment")
        if end <= start:
            raise errors.InvalidInput("the window ends before it starts", field="to")
        window = Window.of(self._log_root, deployment, start, end)
        served = window.column("version")
        models = window.column("model")
        if served is None or models is None or len(served) == 0:
            raise errors.NotFound(f"deployment {deployment!r} logged no predictions between {start.isoformat()} and "
                                  f"{end.isoformat()}: no data, so no drift to report")
        (model, version), _ = Counter(zip(models.to_pylist(), served.to_pylist())).most_common(1)[0]
        settings = self._settings(deployment, environment)
        with self._store.writing() as tx:
            profile = tx.get_profile(model, int(version))
            self._audit.record(tx, actor.name, "predictions.read", f"deployment/{deployment}", {
                "from": start.isoformat(), "to": end.isoformat(), "purpose": "drift"})
        if profile is None:
            raise errors.NotFound(f"{model}@{version} was registered without training data: there is no reference "
                                  "to compare with")
        sample = self._sample(profile)
        features = [self._feature(window, name, column, sample, settings)
                    for name, column in profile["columns"].items()]
        return DriftResult(deployment, model, int(version), start, end, len(served), drift.dataset(features),
                           tuple(window.problems))

    def _settings(self, deployment: str, environment: str | None) -> deployment_spec.Drift:
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
                 settings: deployment_spec.Drift) -> drift.FeatureDrift:
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
        return drift.categorical(reference, folded, method=method, threshold=threshold, feature=name)


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
