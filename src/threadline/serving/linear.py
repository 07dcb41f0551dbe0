"""Linear scikit-learn models evaluated from their fitted coefficients, for small batches.

For one row, ``LogisticRegression.predict_proba`` takes about 110 µs, of which the arithmetic
is about 5 µs: the rest is scikit-learn checking its input on every call (is it a dataframe of
some library, is the model fitted, how many features, any NaN). The server has already checked
each request against the version's signature, so for the models below it does the arithmetic
itself, with the same numpy and scikit-learn functions in the same order.

Each row is computed exactly as scikit-learn computes that row alone, whatever else is in the
batch: BLAS takes other paths for other row counts, so a batch of linear models through
scikit-learn can differ from its rows one by one in the last bit, and micro-batching must not
change an answer. A plan is only used after it reproduced, at load, the estimator's own answer
for one row and for each of a batch of probe rows predicted alone (``plan_for``), and only for
finite float64 inputs (anything else goes to scikit-learn, which also raises its own errors).

Covered: ``LogisticRegression`` (``predict_proba``) and ``LinearRegression``, ``Ridge``,
``Lasso``, ``ElasticNet`` and their CV variants (``predict``), alone or at the end of a
``Pipeline`` whose other steps are ``StandardScaler``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

log = logging.getLogger("threadline.serving")

Step = Callable[[np.ndarray], np.ndarray]
# Regressors whose predict is LinearModel's: the features times the coefficients plus the intercept.
_REGRESSORS = ("LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet",
               "ElasticNetCV")
_PROBE_ROWS = 33


@dataclass(frozen=True)
class LinearPlan:
    """``method`` of an estimator as a list of array steps."""

    steps: tuple[Step, ...]
    n_features: int

    def accepts(self, features: np.ndarray) -> bool:
        """Whether the plan gives, for each row of ``features``, exactly what scikit-learn gives
        for that row alone."""
        return (type(features) is np.ndarray and features.dtype == np.float64 and features.ndim == 2
                and features.shape[1] == self.n_features and bool(np.isfinite(features).all()))

    def __call__(self, features: np.ndarray) -> np.ndarray:
        result = features
        for step in self.steps:
            result = step(result)
        return result


def plan_for(estimator: Any, method: str) -> LinearPlan | None:
    """The plan of ``estimator.method`` (``predict_proba`` or ``predict``), or None when the
    estimator is not covered or the plan does not reproduce it exactly on probe rows."""
    try:
        plan = _compile(estimator, method)
    except (AttributeError, TypeError, ValueError):  # not fitted, or an unusual fitted state
        return None
    if plan is None:
        return None
    probe = np.random.default_rng(0).normal(0.0, 3.0, size=(_PROBE_ROWS, plan.n_features))
    try:
        alone = [np.asarray(getattr(estimator, method)(probe[i:i + 1])) for i in range(_PROBE_ROWS)]
    except Exception:  # noqa: BLE001 - an estimator that cannot take plain rows keeps its own call
        return None
    expected = (np.concatenate(alone), alone[0])
    got = (plan(probe.copy()), plan(probe[:1].copy()))
    if all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
           for a, b in zip(got, expected)):
        return plan
    log.warning("%s.%s: the direct evaluation differs from scikit-learn's on probe rows; "
                "scikit-learn's own call is used", type(estimator).__name__, method)
    return None


def _compile(estimator: Any, method: str) -> LinearPlan | None:
    from sklearn.pipeline import Pipeline

    members = [step for _, step in estimator.steps] if isinstance(estimator, Pipeline) \
        else [estimator]
    chain = [step for step in members if step is not None and step != "passthrough"]
    if not chain:
        return None
    transforms = [_scaler(step) for step in chain[:-1]]
    final = _final(chain[-1], method)
    if final is None or any(transform is None for transform in transforms):
        return None
    n_features = getattr(chain[0], "n_features_in_", None)
    if not isinstance(n_features, int):
        return None
    return LinearPlan((*transforms, final), n_features)  # type: ignore[arg-type]


def _scaler(step: Any) -> Step | None:
    """``StandardScaler.transform`` on a dense float64 array (always on a copy)."""
    from sklearn.preprocessing import StandardScaler

    if type(step) is not StandardScaler:
        return None
    mean = step.mean_ if step.with_mean else None
    scale = step.scale_ if step.with_std else None

    def transform(features: np.ndarray) -> np.ndarray:
        result = np.array(features, dtype=np.float64, copy=True)
        if mean is not None:
            result -= mean
        if scale is not None:
            result /= scale
        return result

    return transform


def _final(estimator: Any, method: str) -> Step | None:
    """Exact classes only: a subclass may compute its answer otherwise."""
    from sklearn import linear_model

    if method == "predict_proba" and type(estimator) is linear_model.LogisticRegression:
        return _logistic(estimator)
    regressors = tuple(getattr(linear_model, name) for name in _REGRESSORS)
    if method == "predict" and type(estimator) in regressors:
        return _regression(estimator)
    return None


def _logistic(estimator: Any) -> Step:
    """``LogisticRegression.predict_proba``: the logistic function of the decision for two
    classes, the softmax of the decisions for more."""
    from scipy.special import expit
    from sklearn.utils.extmath import softmax

    coef = estimator.coef_.T if estimator.coef_.ndim == 2 else estimator.coef_
    intercept = estimator.intercept_
    binary = len(estimator.classes_) <= 2

    def predict_proba(features: np.ndarray) -> np.ndarray:
        scores = _row_by_row(features, coef) + intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        if not binary:
            return softmax(scores, copy=False)  # type: ignore[no-any-return]
        positive = expit(scores, out=scores)
        return np.stack([1 - positive, positive], axis=1)

    return predict_proba


def _regression(estimator: Any) -> Step:
    """``LinearModel.predict``: the features times the coefficients plus the intercept."""
    coef = estimator.coef_ if estimator.coef_.ndim == 1 else estimator.coef_.T
    intercept = estimator.intercept_

    def predict(features: np.ndarray) -> np.ndarray:
        return _row_by_row(features, coef) + intercept  # type: ignore[no-any-return]

    return predict


def _row_by_row(features: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``features @ coef`` as a stack of one-row products: numpy multiplies each (1, n) slice
    as it multiplies a one-row matrix, which a single product of the whole batch does not."""
    return np.matmul(features[:, np.newaxis, :], coef)[:, 0]
