"""The decision chain of a batch: what each step of a scikit-learn model made of each row.

A reviewer judging an escalated prediction needs more than the final probabilities: the
features after each pipeline step, what each member of an ensemble said, how far the trees of
a forest or the stages of a boosted model agreed. ``decision_chain`` returns those as
JSON-native steps, one list per row, in the order the data flows: transforms, then members or
trees, then the final prediction::

    {"step": "scaler", "kind": "transform", "output": [0.13, -1.2]}
    {"step": "vote.lr", "kind": "member", "output": {"probabilities": [0.9, 0.1]}}
    {"step": "forest.trees", "kind": "trees", "output": {"n": 100, "votes": {...}, ...}}
    {"step": "vote", "kind": "predict", "output": {"probabilities": [...], "label": "spam"}}

A bundle is replayed by running the chain again and comparing with ``==``, so nothing here
rounds or samples: numbers leave numpy through ``tolist()``/``item()`` (exact), and every model
call is made once for the whole batch, the result only being split by row afterwards. A row's
values can still differ in the last bit with the batch it was computed in (BLAS kernels sum in
blocks), so a chain meant for replay must be computed on exactly the rows that will be
replayed: for a bundle, the escalated row alone.

scikit-learn is imported inside the functions that need it: ``rows`` also serves ONNX
predictors, and a server running only ONNX models should not pay for importing scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from threadline.domain import errors

Kind = Literal["transform", "member", "trees", "predict"]
Step = dict[str, Any]
"""``{"step": name, "kind": Kind, "output": JSON value}``."""

_Column = tuple[str, Kind, list[Any]]  # one step for every row of the batch
_EXACT_KINDS = "biufU"  # numpy kinds whose tolist() gives bool, int, float or str

_STATISTICS: Mapping[str, Callable[[np.ndarray], np.ndarray]] = MappingProxyType({
    "mean": lambda values: values.mean(axis=0),
    "std": lambda values: values.std(axis=0),
    "min": lambda values: values.min(axis=0),
    "p10": lambda values: np.percentile(values, 10, axis=0),
    "p50": lambda values: np.percentile(values, 50, axis=0),
    "p90": lambda values: np.percentile(values, 90, axis=0),
    "max": lambda values: values.max(axis=0),
})
"""Summaries over the first axis (trees or stages) of an array shaped (trees, rows, ...)."""


def decision_chain(estimator: Any, features: Any) -> list[list[Step]]:
    """The steps of each row of ``features`` (2-D: an array, a sparse matrix or a DataFrame)
    through the fitted ``estimator``."""
    from sklearn.pipeline import Pipeline

    columns: list[_Column] = []
    name, final, current = type(estimator).__name__.lower(), estimator, features
    if isinstance(estimator, Pipeline):
        for step_name, transformer in estimator.steps[:-1]:
            if transformer is None or isinstance(transformer, str):  # "passthrough"
                continue
            current = transformer.transform(current)
            columns.append((step_name, "transform", _vectors(current)))
        name, final = estimator.steps[-1]
    columns += _final_steps(name, final, current)
    return [[{"step": step, "kind": kind, "output": outputs[row]}
             for step, kind, outputs in columns]
            for row in range(features.shape[0])]


def rows(batch: Any) -> list[Any]:
    """Split a batch along its first axis into JSON-native values, one per row."""
    if isinstance(batch, np.ndarray) and batch.dtype.kind in _EXACT_KINDS:
        return list(batch.tolist())
    return [json_native(item) for item in batch]


def json_native(value: Any) -> Any:
    """``value`` as plain JSON types (dict keys become strings), converted exactly."""
    if isinstance(value, np.ndarray):
        return rows(value) if value.ndim else json_native(value.item())
    if isinstance(value, np.generic):  # before the built-ins: np.float64 is a float
        return json_native(value.item())
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(key): json_native(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_native(item) for item in value]
    raise errors.InvalidInput(f"the model produced a {type(value).__name__}, which a bundle "
                              "cannot record: only numbers, strings, booleans and lists of them",
                              field="output")


def _final_steps(name: str, estimator: Any, features: Any) -> list[_Column]:
    columns: list[_Column] = [
        (f"{name}.{member_name}", "member", _member_outputs(estimator, member, features))
        for member_name, member in _members(estimator)]
    trees = _trees(estimator, features)
    if trees is not None:
        columns.append((f"{name}.trees", "trees", trees))
    columns.append((name, "predict", _predictions(estimator, features)))
    return columns


def _vectors(features: Any) -> list[Any]:
    """Each row of a transformer's output, numbers as floats; sparse rows densified one by one
    (densifying the whole batch could need far more memory than the sparse matrix)."""
    from scipy import sparse

    if sparse.issparse(features):
        matrix = features.tocsr()
        return [rows(_floats(matrix[row].toarray()[0])) for row in range(matrix.shape[0])]
    return rows(_floats(np.asarray(features)))


def _floats(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float64) if array.dtype.kind in "biuf" else array


def _predictions(estimator: Any, features: Any) -> list[Any]:
    from sklearn.base import is_classifier

    if not is_classifier(estimator):
        predictions = np.asarray(estimator.predict(features), dtype=np.float64)
        return [{"prediction": value} for value in rows(predictions)]
    labels = rows(np.asarray(estimator.predict(features)))
    if not hasattr(estimator, "predict_proba"):  # e.g. hard voting, SVC without probability
        return [{"label": label} for label in labels]
    probabilities = rows(np.asarray(estimator.predict_proba(features), dtype=np.float64))
    return [{"probabilities": p, "label": label} for p, label in zip(probabilities, labels)]


def _members(estimator: Any) -> list[tuple[str, Any]]:
    from sklearn import ensemble

    if not isinstance(estimator, (ensemble.VotingClassifier, ensemble.VotingRegressor,
                                  ensemble.StackingClassifier, ensemble.StackingRegressor)):
        return []
    # named_estimators_ keeps members declared as "drop" (as the string), which never ran.
    return [(name, member) for name, member in estimator.named_estimators_.items()
            if not isinstance(member, str)]


def _member_outputs(ensemble: Any, member: Any, features: Any) -> list[Any]:
    from sklearn.base import is_classifier

    if not is_classifier(ensemble):
        predictions = np.asarray(member.predict(features), dtype=np.float64)
        return [{"prediction": value} for value in rows(predictions)]
    if hasattr(member, "predict_proba"):
        probabilities = np.asarray(member.predict_proba(features), dtype=np.float64)
        return [{"probabilities": value} for value in rows(probabilities)]
    # Voting and stacking classifiers fit their members on labels encoded as 0..k-1.
    encoded = np.asarray(member.predict(features)).astype(np.intp)
    return [{"label": label} for label in rows(ensemble.classes_[encoded])]


def _trees(estimator: Any, features: Any) -> list[Any] | None:
    from sklearn import ensemble

    if isinstance(estimator, (ensemble.RandomForestClassifier, ensemble.ExtraTreesClassifier)):
        # Several outputs have one class list each: there is no single table of votes.
        if estimator.n_outputs_ != 1:
            return None
        return _forest_votes(estimator, _tree_input(features))
    if isinstance(estimator, (ensemble.RandomForestRegressor, ensemble.ExtraTreesRegressor)):
        return _forest_spread(estimator, _tree_input(features))
    if isinstance(estimator, (ensemble.GradientBoostingClassifier,
                              ensemble.GradientBoostingRegressor)):
        return _boosting_stages(estimator, _tree_input(features))
    return None


def _tree_input(features: Any) -> Any:
    """What forests and boosted models hand their trees: float32, C-ordered or CSR, and no
    column names (the trees were fitted without them and would warn)."""
    from scipy import sparse

    if sparse.issparse(features):
        return features.tocsr().astype(np.float32)
    return np.ascontiguousarray(features, dtype=np.float32)


def _forest_votes(forest: Any, features: Any) -> list[Any]:
    per_tree = np.stack([tree.predict_proba(features) for tree in forest.estimators_])
    classes = [str(label) for label in rows(forest.classes_)]
    winners = per_tree.argmax(axis=2)  # (trees, rows)
    votes = (winners[..., np.newaxis] == np.arange(len(classes))).sum(axis=0)  # (rows, classes)
    summaries = _summaries(per_tree, ("mean", "std"), keys=classes)
    return [{**summary, "votes": dict(zip(classes, counts))}
            for summary, counts in zip(summaries, rows(votes))]


def _forest_spread(forest: Any, features: Any) -> list[Any]:
    per_tree = np.stack([tree.predict(features) for tree in forest.estimators_])  # (trees, rows)
    return _summaries(per_tree, ("mean", "std", "min", "p10", "p50", "p90", "max"))


def _boosting_stages(model: Any, features: Any) -> list[Any]:
    """Each stage's contribution to the raw score (learning rate times its tree's output, one
    tree per class for multiclass), and the raw score the stages start from.

    The start is taken from ``_raw_predict_init``, the method scikit-learn itself uses: deriving
    it from the public ``decision_function`` minus the stages would not be exact.
    """
    stages = np.stack([[model.learning_rate * tree.predict(features) for tree in stage]
                       for stage in model.estimators_]).transpose(0, 2, 1)  # (stages, rows, K)
    start = np.asarray(model._raw_predict_init(features), dtype=np.float64)  # (rows, K)
    keys = None
    if stages.shape[2] == 1:  # regression and binary classification: one raw score
        stages, start = stages[..., 0], start[:, 0]
    else:
        keys = [str(label) for label in rows(model.classes_)]
    summaries = _summaries(stages, ("mean", "std", "min", "max"), keys=keys)
    return [{**summary, "init": _keyed(init, keys)}
            for summary, init in zip(summaries, rows(start))]


def _summaries(values: np.ndarray, statistics: Sequence[str],
               keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Per row, the ``statistics`` of ``values`` (trees or stages, rows, ...) over trees."""
    columns = {name: rows(_STATISTICS[name](values)) for name in statistics}
    return [{"n": len(values),
             **{name: _keyed(column[row], keys) for name, column in columns.items()}}
            for row in range(values.shape[1])]


def _keyed(value: Any, keys: list[str] | None) -> Any:
    """Per-class lists as mappings from class label, which a reviewer can read without the
    class order."""
    return dict(zip(keys, value)) if keys is not None else value
