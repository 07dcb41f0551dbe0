"""Model quality of one window, from predictions and the labels that came back for them.

This module owns the metrics and nothing else: the caller joins the prediction log with the
labels (feedback, human review) and hands over the pairs of one window; it gets back a frozen
``Quality`` and, against the deployment's ``spec.monitoring.accuracy`` bound, a ``Verdict``.

Every metric equals scikit-learn's on the same data (the tests compare to 1e-12), because users
check our numbers against the tool they already trust; scikit-learn is not imported here, since
these few formulas are cheaper to own than its input validation on every window.

- Classification: ``accuracy``; ``precision``, ``recall`` and ``f1`` as
  ``sklearn.metrics.*_score(..., zero_division=0)``; ``roc_auc`` as ``roc_auc_score``. For a
  binary classifier they are those of the positive class: ``classes[1]`` when the model's
  classes are given (scikit-learn's ``predict_proba`` column 1), otherwise the second of the two
  labels seen in sorted order. Otherwise (more than two labels, or labels outside the two
  classes) they are macro averages over the labels seen in the window (``average="macro"``), so
  a class nobody asked about this hour does not drag the mean down.
- ROC AUC is one-vs-rest: the positive class's probability for a binary classifier, the macro
  average over the classes present among the labels for more (``multi_class="ovr"``; where
  scikit-learn refuses a class absent from the window, it is left out). It is None without
  probabilities, or with fewer than two classes among the labels, where it is undefined.
- Regression: ``mae``, ``rmse`` and ``r2`` (``r2`` is None below two pairs, where scikit-learn
  returns NaN, and follows its ``force_finite``: 1.0 or 0.0 for constant labels).

Labels are compared as strings: a label arrives as JSON from feedback, where the class ``1`` may
come back as ``"1"`` or ``1.0``, while the model predicted ``np.int64(1)``. ``coerce_label`` is
the gate for one label from JSON; the same normalisation applies to the predictions here.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import stats

from threadline.domain import errors
from threadline.monitoring.alerts import Verdict

Kind = Literal["classification", "regression"]

METRICS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "classification": ("accuracy", "precision", "recall", "f1", "roc_auc"),
    "regression": ("mae", "rmse", "r2"),
})
"""The metrics each kind of model reports, by kind."""

_ROLES: Mapping[str, Kind] = MappingProxyType({
    "classification": "classification", "classifier": "classification",
    "regression": "regression", "regressor": "regression",
})


@dataclasses.dataclass(frozen=True)
class Quality:
    """The metrics of one window: every metric of ``METRICS[kind]``, None where undefined.

    ``count`` is the number of labelled predictions; ``notes`` say why a metric is None.
    """

    kind: Kind
    count: int
    metrics: Mapping[str, float | None]
    notes: tuple[str, ...] = ()


Labels = Sequence[Any] | np.ndarray
"""Labels of a classifier: any sequence, or a numpy array as a model returns it."""


def classification(actual: Labels, predicted: Labels, probabilities: np.ndarray | None = None,
                   classes: Labels | None = None) -> Quality:
    """Quality of a classifier from the labels (``actual``) and its predictions, pair by pair.

    ``classes`` are the model's classes in the order of its probability columns.
    ``probabilities`` are either the positive class's probability per prediction (binary) or one
    column per class in ``classes`` order (which then must be given). Raises ``InvalidInput``
    for sequences of different lengths, duplicate classes, or probabilities that do not fit.
    """
    truth, guess = _labels(actual, "actual"), _labels(predicted, "predicted")
    if truth.size != guess.size:
        raise errors.InvalidInput(f"{truth.size} labels for {guess.size} predictions",
                                  field="predicted")
    names = None if classes is None else _class_names(classes)
    if truth.size == 0:
        return _empty("classification")
    seen = sorted(set(truth.tolist()) | set(guess.tolist()), key=_label_order)
    positive = _positive(names, seen)
    if positive is None:
        precision, recall, f1 = _macro(truth, guess, seen)
    else:
        precision, recall, f1 = _scores(truth == positive, guess == positive)
    auc, note = _roc_auc(truth, probabilities, names, seen)
    metrics = {"accuracy": float(np.mean(truth == guess)), "precision": precision,
               "recall": recall, "f1": f1, "roc_auc": auc}
    return Quality("classification", int(truth.size), MappingProxyType(metrics),
                   () if note is None else (note,))


def regression(actual: Sequence[float] | np.ndarray,
               predicted: Sequence[float] | np.ndarray) -> Quality:
    """Quality of a regressor: mean absolute error, root mean squared error and R squared.

    Raises ``InvalidInput`` for sequences of different lengths or values that are not finite
    numbers.
    """
    truth, guess = _numbers(actual, "actual"), _numbers(predicted, "predicted")
    if truth.size != guess.size:
        raise errors.InvalidInput(f"{truth.size} labels for {guess.size} predictions",
                                  field="predicted")
    if truth.size == 0:
        return _empty("regression")
    error = truth - guess
    metrics: dict[str, float | None] = {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "r2": None,
    }
    notes: tuple[str, ...] = ()
    if truth.size < 2:
        notes = ("r2 needs at least two labelled predictions",)
    else:
        residual = float(np.sum(error ** 2))
        spread = float(np.sum((truth - np.mean(truth)) ** 2))
        if spread == 0.0:
            # scikit-learn's force_finite: a perfect fit of constant labels is 1, anything else 0.
            metrics["r2"] = 1.0 if residual == 0.0 else 0.0
        else:
            metrics["r2"] = 1.0 - residual / spread
    return Quality("regression", int(truth.size), MappingProxyType(metrics), notes)


def check(quality: Quality, metric: str, minimum: float | None,
          maximum: float | None) -> Verdict:
    """Judge one metric against its bound: ``minimum`` for scores, ``maximum`` for errors.

    Exactly one bound is given. A value equal to the bound holds. Without labels, or when the
    metric is undefined (``roc_auc`` of one class), ``breached`` is None: no data is not a
    breach, and not a recovery either.
    """
    if metric not in METRICS[quality.kind]:
        known = ", ".join(METRICS[quality.kind])
        raise errors.InvalidInput(f"{quality.kind} reports no {metric!r}; known: {known}",
                                  field="metric")
    if minimum is not None and maximum is None:
        bound, floor = float(minimum), True
    elif maximum is not None and minimum is None:
        bound, floor = float(maximum), False
    else:
        raise errors.InvalidInput("give exactly one of minimum and maximum", field="minimum")
    value = quality.metrics.get(metric)
    if quality.count == 0:
        return Verdict(metric, None, bound, None, "no labels")
    if value is None:
        why = next((n for n in quality.notes if n.startswith(metric)), f"{metric} is undefined")
        return Verdict(metric, None, bound, None, f"no labels: {why}")
    size = f"over {quality.count} labelled prediction{'' if quality.count == 1 else 's'}"
    if floor:
        if value < bound:
            return Verdict(metric, value, bound, True,
                           f"{metric} {value:.4g} is below the minimum {bound:g} {size}")
        return Verdict(metric, value, bound, False,
                       f"{metric} {value:.4g} meets the minimum {bound:g} {size}")
    if value > bound:
        return Verdict(metric, value, bound, True,
                       f"{metric} {value:.4g} is above the maximum {bound:g} {size}")
    return Verdict(metric, value, bound, False,
                   f"{metric} {value:.4g} is within the maximum {bound:g} {size}")


def coerce_label(value: Any, kind: str, *, prediction: str | None = None) -> str | float:
    """One label received as JSON, checked for a classifier (-> str) or a regressor (-> float).

    ``kind`` is ``"classification"`` or ``"regression"`` (``"classifier"`` and ``"regressor"``
    are accepted too). A classifier's label is a string, an integer, an integral number (``1.0``
    is class ``"1"``) or a boolean; a regressor's is a finite number, never a boolean (JSON
    ``true`` is not 1.0). The ``InvalidInput`` message names ``prediction``, so a caller
    checking a batch can report each bad label as is.
    """
    role = _ROLES.get(kind)
    if role is None:
        raise errors.InvalidInput(f"must be 'classification' or 'regression', got {kind!r}",
                                  field="kind")
    which = "label" if prediction is None else f"label of prediction {prediction}"
    if role == "regression":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise errors.InvalidInput(f"{which} must be a number for a regressor, "
                                      f"got {_shown(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise errors.InvalidInput(f"{which} must be a finite number for a regressor, "
                                      f"got {_shown(value)}")
        return number
    if isinstance(value, str):
        if not value:
            raise errors.InvalidInput(f"{which} must not be empty for a classifier")
        return value
    if isinstance(value, (bool, int)) or (isinstance(value, float) and value.is_integer()):
        return _label(value)
    raise errors.InvalidInput(f"{which} must be a class (a string, an integer or a boolean) "
                              f"for a classifier, got {_shown(value)}")


def _empty(kind: Kind) -> Quality:
    return Quality(kind, 0, MappingProxyType(dict.fromkeys(METRICS[kind])), ("no labels",))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _label(value: Any) -> str:
    """The string a label is compared as: ``1``, ``1.0``, ``np.int64(1)`` and ``"1"`` agree."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _labels(values: Labels, field: str) -> np.ndarray:
    array = np.asarray(values) if isinstance(values, np.ndarray) else None
    if array is not None and array.ndim != 1:
        raise errors.InvalidInput(f"must be one-dimensional, got shape {array.shape}",
                                  field=field)
    if array is not None and array.dtype.kind in "iub":
        return array.astype(str)  # vectorised: integers and booleans print as _label does
    items = [_label(v) for v in (array.tolist() if array is not None else values)]
    return np.array(items, dtype=str) if items else np.array([], dtype=str)


def _label_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (so "2" comes before "10"), then other labels by name."""
    try:
        number = float(label)
    except ValueError:
        return 1, 0.0, label
    return (0, number, label) if math.isfinite(number) else (1, 0.0, label)


def _class_names(classes: Labels) -> tuple[str, ...]:
    names = tuple(_label(c) for c in (classes.tolist() if isinstance(classes, np.ndarray)
                                      else classes))
    if len(set(names)) != len(names):
        raise errors.InvalidInput(f"must be distinct once compared as strings, got {names!r}",
                                  field="classes")
    return names


def _positive(names: tuple[str, ...] | None, seen: list[str]) -> str | None:
    """The positive class of a binary problem, None when the scores are macro averages."""
    if names is not None:
        return names[1] if len(names) == 2 and set(seen) <= set(names) else None
    return seen[1] if len(seen) == 2 else None


def _scores(true: np.ndarray, hit: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of one class from "is it" and "was it predicted" masks.

    F1 is 2 tp / (true + predicted), as scikit-learn computes it, so it is 0 rather than
    undefined when precision and recall are both 0.
    """
    tp = int(np.count_nonzero(true & hit))
    predicted, actual = int(np.count_nonzero(hit)), int(np.count_nonzero(true))
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    f1 = 2 * tp / (actual + predicted) if actual + predicted else 0.0
    return precision, recall, f1


def _macro(truth: np.ndarray, guess: np.ndarray,
           seen: list[str]) -> tuple[float, float, float]:
    per_class = np.array([_scores(truth == label, guess == label) for label in seen])
    precision, recall, f1 = per_class.mean(axis=0)
    return float(precision), float(recall), float(f1)


def _roc_auc(truth: np.ndarray, probabilities: np.ndarray | None,
             names: tuple[str, ...] | None, seen: list[str]) -> tuple[float | None, str | None]:
    """One-vs-rest ROC AUC, or None and the reason it is undefined."""
    if probabilities is None:
        return None, "roc_auc needs the predicted probabilities"
    scores = _probabilities(probabilities, truth.size, names)
    columns = names if scores.ndim == 2 and names is not None else _binary_classes(names, seen)
    present = set(truth.tolist())
    if columns is None or len(present) < 2:
        return None, "roc_auc needs at least two classes among the labels"
    unknown = sorted(present - set(columns), key=_label_order)
    if unknown:
        return None, f"roc_auc: labels not among the model's classes: {', '.join(unknown[:5])}"
    if scores.ndim == 1:
        return _binary_auc(truth == columns[1], scores), None
    if len(columns) == 2:
        return _binary_auc(truth == columns[1], scores[:, 1]), None
    aucs = [_binary_auc(truth == name, scores[:, i]) for i, name in enumerate(columns)
            if name in present]
    return float(np.mean(aucs)), None


def _binary_classes(names: tuple[str, ...] | None,
                    seen: list[str]) -> tuple[str, ...] | None:
    """The (negative, positive) classes one probability per prediction refers to.

    None when, without the model's classes, the window shows a single label: there is no
    telling which class the probabilities are of, and the AUC is undefined anyway.
    """
    if names is not None and len(names) == 2:
        return names
    if names is None and len(seen) < 2:
        return None
    if names is None and len(seen) == 2:
        return seen[0], seen[1]
    raise errors.InvalidInput("one probability per prediction fits a binary classifier only; "
                              "give one column per class", field="probabilities")


def _probabilities(values: np.ndarray, rows: int, names: tuple[str, ...] | None) -> np.ndarray:
    try:
        scores = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field="probabilities") from None
    if scores.ndim not in (1, 2) or scores.shape[0] != rows:
        raise errors.InvalidInput(f"must have one row per prediction ({rows}), got shape "
                                  f"{scores.shape}", field="probabilities")
    if not np.isfinite(scores).all():
        raise errors.InvalidInput("must be finite numbers", field="probabilities")
    if scores.ndim == 2:
        if names is None:
            raise errors.InvalidInput("one column per class needs the classes that name the "
                                      "columns", field="classes")
        if scores.shape[1] != len(names):
            raise errors.InvalidInput(f"has {scores.shape[1]} columns for {len(names)} classes",
                                      field="probabilities")
    return scores


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic over n_pos * n_neg.

    This is the area under the ROC curve exactly, ties counting one half, as scikit-learn's
    trapezoids give; rank sums are exact in float64 for any realistic window.
    """
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    ranks = stats.rankdata(scores)
    u = float(np.sum(ranks[positive])) - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def _numbers(values: Sequence[float] | np.ndarray, field: str) -> np.ndarray:
    if not isinstance(values, np.ndarray) and any(isinstance(v, bool) for v in values):
        raise errors.InvalidInput("must be numbers, not booleans", field=field)
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"must be numbers ({exc})", field=field) from None
    if array.ndim != 1:
        raise errors.InvalidInput(f"must be one-dimensional, got shape {array.shape}",
                                  field=field)
    if not np.isfinite(array).all():
        raise errors.InvalidInput("must be finite numbers", field=field)
    return array
