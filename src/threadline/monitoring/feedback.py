"""Ground-truth labels for logged predictions (use case).

Labels arrive in batches, often days after the prediction, from a client system or from a
reviewer's resolution. Each label is checked against the prediction it names: the id must
be in the deployment's prediction log, and the label must suit the model that answered (a
class for a classifier, a number for a regressor). A bad item is reported back and the rest
of the batch is kept, because one typo must not lose a thousand good labels.

Each label is stored with its prediction's time, so a window's labels are found without
scanning the log, and a late label drops the kept quality profiles of the windows it lands
in: the next read recomputes them (``monitoring.service``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, models, names, prediction_ids
from threadline.monitoring import accuracy
from threadline.monitoring.log_location import LogLocation
from threadline.monitoring.window import Window

MAX_BATCH = 10_000
_ALL_TIME = (datetime(1970, 1, 1, tzinfo=timezone.utc), datetime(9999, 1, 1, tzinfo=timezone.utc))


@dataclass(frozen=True)
class LabelItem:
    prediction_id: str
    label: Any


@dataclass
class FeedbackResult:
    accepted: int = 0
    unknown: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Feedback:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock, log: LogLocation) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._log = log

    def add(self, actor: access.Actor, deployment: str, items: Sequence[LabelItem], *,
            source: str = "api") -> FeedbackResult:
        actor.require(access.Permission.WRITE_FEEDBACK)
        deployment = names.model_name(deployment, field="deployment")
        if not items:
            raise errors.InvalidInput("no labels given", field="labels")
        if len(items) > MAX_BATCH:
            raise errors.InvalidInput(f"{len(items)} labels in one batch; send at most {MAX_BATCH}", field="labels")
        result = FeedbackResult()
        found = self._predictions(deployment, {item.prediction_id for item in items}, result)
        kinds = self._kinds({(model, version) for _time, model, version in found.values()})
        now = self._clock.now()
        accepted: list[models.Feedback] = []
        for item in items:
            prediction = found.get(item.prediction_id)
            if prediction is None:
                result.unknown.append(item.prediction_id)
                continue
            time, model, version = prediction
            try:
                label = accuracy.coerce_label(item.label, kinds[(model, version)])
            except errors.InvalidInput as exc:
                result.rejected.append({"prediction_id": item.prediction_id, "error": str(exc)})
                continue
            accepted.append(models.Feedback(deployment, item.prediction_id, time, label, source, actor.name, now))
        with self._store.writing() as tx:
            for label in accepted:
                tx.put_feedback(label)
            if accepted:
                times = [label.prediction_time for label in accepted]
                tx.forget_window_profiles(deployment, "quality", min(times), max(times))
            self._audit.record(tx, actor.name, "feedback.add", f"deployment/{deployment}", {
                "source": source, "accepted": len(accepted), "unknown": len(result.unknown),
                "rejected": len(result.rejected)})
        result.accepted = len(accepted)
        return result

    def _predictions(self, deployment: str, ids: set[str],
                     result: FeedbackResult) -> dict[str, tuple[datetime, str, int]]:
        window = Window.of(self._log, deployment, *self._span(ids))
        table = window.matching(["model", "version"], ids)
        result.problems.extend(window.problems)
        if "model" not in table.column_names:
            return {}
        return {pid: (time, model, int(version)) for pid, time, model, version in zip(
            table["prediction_id"].to_pylist(), table["time"].to_pylist(), table["model"].to_pylist(),
            table["version"].to_pylist())}

    def _span(self, ids: set[str]) -> tuple[datetime, datetime]:
        """The days to read: around the times the ids carry, or everything for ids that carry none."""
        now = self._clock.now()
        times = [prediction_ids.time_of(pid, now=now) for pid in ids]
        if not times or any(t is None for t in times):
            return _ALL_TIME
        known = [t for t in times if t is not None]
        return min(known) - timedelta(days=1), max(known) + timedelta(days=1)

    def _kinds(self, versions: set[tuple[str, int]]) -> Mapping[tuple[str, int], str]:
        with self._store.reading() as tx:
            return {(model, version): task_of(tx.get_version(model, version).signature)
                    for model, version in versions}


def task_of(signature: models.Signature) -> str:
    """``classification`` when the model answers with class probabilities or labels."""
    outputs = {spec.name for spec in signature.outputs}
    return "classification" if signature.classes is not None or "probabilities" in outputs or \
        "label" in outputs else "regression"
