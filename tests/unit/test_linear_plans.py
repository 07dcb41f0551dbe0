"""Linear models computed from their coefficients give, row by row, scikit-learn's exact bits for
that row alone, or are not used."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import (ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge,
                                  SGDClassifier)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from threadline.domain.models import Signature, TensorSpec
from threadline.serving import linear
from threadline.serving.predictors import SklearnPredictor

X2, Y2 = make_classification(n_samples=300, n_features=8, n_informative=4, random_state=0)
X4, Y4 = make_classification(n_samples=300, n_features=8, n_informative=5, n_classes=4, random_state=1)
XR, YR = make_regression(n_samples=300, n_features=8, random_state=2)
_, YR3 = make_regression(n_samples=300, n_features=8, n_targets=3, random_state=2)

COVERED = {
    "binary logistic": (lambda: LogisticRegression().fit(X2, Y2), "predict_proba", X2),
    "multinomial logistic": (lambda: LogisticRegression(max_iter=500).fit(X4, Y4), "predict_proba",
                             X4),
    "scaled logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(X2, Y2),
                        "predict_proba", X2),
    "scaled, not centred": (lambda: make_pipeline(StandardScaler(with_mean=False),
                                                  LogisticRegression(max_iter=500)).fit(X4, Y4),
                            "predict_proba", X4),
    "linear regression": (lambda: LinearRegression().fit(XR, YR), "predict", XR),
    "ridge, three targets": (lambda: Ridge().fit(XR, YR3), "predict", XR),
    "scaled lasso": (lambda: make_pipeline(StandardScaler(), Lasso()).fit(XR, YR), "predict", XR),
    "elastic net": (lambda: ElasticNet().fit(XR, YR), "predict", XR),
}


def alone(estimator: object, method: str, rows: np.ndarray) -> np.ndarray:
    """What scikit-learn answers for each row of ``rows`` predicted on its own."""
    return np.concatenate([getattr(estimator, method)(rows[i:i + 1]) for i in range(len(rows))])


@pytest.mark.parametrize("case", COVERED)
def test_each_row_gets_scikit_learns_exact_bits_for_it_alone_at_every_batch_size(case: str) -> None:
    make, method, data = COVERED[case]
    estimator = make()
    plan = linear.plan_for(estimator, method)
    assert plan is not None
    rows = np.random.default_rng(5).normal(0, 4, size=(70, data.shape[1]))
    expected = alone(estimator, method, rows)
    for n in (1, 2, 3, 16, 17, 64, 70):
        got = plan(rows[:n])
        assert got.dtype == expected.dtype and got.shape == expected[:n].shape
        assert np.array_equal(got, expected[:n]), n
    assert np.array_equal(plan(rows[:1]), getattr(estimator, method)(rows[:1]))


def test_a_scaler_never_changes_the_callers_array() -> None:
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(X2, Y2)
    plan = linear.plan_for(estimator, "predict_proba")
    assert plan is not None
    rows = X2[:5].copy()
    plan(rows)
    assert np.array_equal(rows, X2[:5])


@pytest.mark.parametrize("make, method", [
    (lambda: RandomForestClassifier(n_estimators=3, random_state=0).fit(X2, Y2), "predict_proba"),
    (lambda: SGDClassifier(loss="log_loss", random_state=0).fit(X2, Y2), "predict_proba"),
    (lambda: make_pipeline(MinMaxScaler(), LogisticRegression()).fit(X2, Y2), "predict_proba"),
    (lambda: LogisticRegression().fit(X2, Y2), "predict"),  # labels come from the probabilities
    (lambda: LogisticRegression(), "predict_proba"),  # not fitted
    (lambda: type("Custom", (LogisticRegression,), {})().fit(X2, Y2), "predict_proba"),  # a subclass
])
def test_models_it_does_not_cover_have_no_plan(make, method: str) -> None:
    assert linear.plan_for(make(), method) is None


def test_a_plan_that_differs_from_scikit_learn_is_not_used() -> None:
    estimator = LogisticRegression().fit(X2, Y2)
    own = estimator.predict_proba
    # as a future scikit-learn computing it another way would:
    estimator.predict_proba = lambda rows: own(rows) + 1e-15
    assert linear.plan_for(estimator, "predict_proba") is None


def test_it_only_accepts_what_it_computes_exactly() -> None:
    plan = linear.plan_for(LogisticRegression().fit(X2, Y2), "predict_proba")
    assert plan is not None
    assert plan.accepts(X2[:3])
    with_nan = X2[:3].copy()
    with_nan[1, 2] = np.nan
    assert not plan.accepts(with_nan)
    assert not plan.accepts(X2[:3].astype(np.float32))
    assert not plan.accepts(X2[:3, :5])
    assert not plan.accepts(X2[0])


def _predictor(estimator: object, classes: int) -> SklearnPredictor:
    signature = Signature(inputs=(TensorSpec("input-0", "FP64", (-1, 8)),),
                          outputs=(TensorSpec("label", "INT64", (-1,)),
                                   TensorSpec("probabilities", "FP64", (-1, classes))))
    return SklearnPredictor(estimator, signature)


def test_the_served_answer_is_scikit_learns_and_nan_still_gets_its_error() -> None:
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(X2, Y2)
    predictor = _predictor(estimator, 2)
    out = predictor.predict({"input-0": X2[:9]})
    assert np.array_equal(out["probabilities"], alone(estimator, "predict_proba", X2[:9]))
    assert np.array_equal(out["label"], alone(estimator, "predict", X2[:9]))
    with_nan = X2[:2].copy()
    with_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        predictor.predict({"input-0": with_nan})


def test_the_predictor_does_not_call_scikit_learn_for_what_the_plan_covers() -> None:
    estimator = LogisticRegression(max_iter=500).fit(X4, Y4)
    expected = alone(estimator, "predict_proba", X4[:4])
    predictor = _predictor(estimator, 4)

    def refuse(rows: object) -> None:
        raise AssertionError("scikit-learn was called")

    estimator.predict_proba = refuse
    assert np.array_equal(predictor.predict({"input-0": X4[:4]})["probabilities"], expected)
    with pytest.raises(AssertionError, match="was called"):
        predictor.predict({"input-0": X4[:4].astype(np.float32)})
