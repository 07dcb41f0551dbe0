"""Model quality: equal to scikit-learn to 1e-12, labels compared as strings, bounds judged."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics

from threadline.domain import errors
from threadline.monitoring import accuracy

EXACT = 1e-12


def _binary(size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    actual = rng.integers(0, 2, size)
    score = np.clip(actual * 0.3 + rng.uniform(size=size) * 0.7, 0, 1)
    score = np.round(score, 2)  # ties, which ROC AUC counts as one half
    predicted = (score > 0.5).astype(int)
    return actual, predicted, score


def _multiclass(size: int, seed: int, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    actual = rng.integers(0, k, size)
    logits = rng.normal(size=(size, k)) + 1.5 * np.eye(k)[actual]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    predicted = proba.argmax(axis=1)
    flip = rng.uniform(size=size) < 0.1
    predicted[flip] = rng.integers(0, k, int(flip.sum()))
    return actual, predicted, proba


def _sklearn_scores(actual: object, predicted: object, **kwargs: object) -> dict[str, float]:
    return {
        "accuracy": metrics.accuracy_score(actual, predicted),
        "precision": metrics.precision_score(actual, predicted, zero_division=0, **kwargs),
        "recall": metrics.recall_score(actual, predicted, zero_division=0, **kwargs),
        "f1": metrics.f1_score(actual, predicted, zero_division=0, **kwargs),
    }


def _assert_close(quality: accuracy.Quality, expected: dict[str, float]) -> None:
    for name, value in expected.items():
        assert quality.metrics[name] == pytest.approx(value, abs=EXACT), name


# -- classification: equal to scikit-learn -----------------------------------------------------

@pytest.mark.parametrize("size", [7, 200, 5000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binary_equals_sklearn(size: int, seed: int) -> None:
    actual, predicted, score = _binary(size, seed)
    quality = accuracy.classification(actual, predicted, score, classes=[0, 1])
    assert (quality.kind, quality.count) == ("classification", size)
    _assert_close(quality, _sklearn_scores(actual, predicted))
    if len(set(actual)) == 2:
        assert quality.metrics["roc_auc"] == pytest.approx(
            metrics.roc_auc_score(actual, score), abs=EXACT)
    # Without classes the positive class is the second label in sorted order: 1 again.
    without = accuracy.classification(actual.tolist(), predicted.tolist(), score)
    assert without.metrics == quality.metrics


def test_binary_two_probability_columns_use_the_positive_column() -> None:
    actual, predicted, score = _binary(300, seed=4)
    proba = np.column_stack((1 - score, score))
    quality = accuracy.classification(actual, predicted, proba, classes=[0, 1])
    assert quality.metrics["roc_auc"] == pytest.approx(metrics.roc_auc_score(actual, score),
                                                       abs=EXACT)


@pytest.mark.parametrize("seed", [5, 6, 7])
@pytest.mark.parametrize("size", [60, 2000])
def test_multiclass_macro_and_one_vs_rest_equal_sklearn(seed: int, size: int) -> None:
    actual, predicted, proba = _multiclass(size, seed)
    quality = accuracy.classification(actual, predicted, proba, classes=[0, 1, 2, 3])
    _assert_close(quality, _sklearn_scores(actual, predicted, average="macro"))
    expected_auc = metrics.roc_auc_score(actual, proba, multi_class="ovr", average="macro",
                                         labels=[0, 1, 2, 3])
    assert quality.metrics["roc_auc"] == pytest.approx(expected_auc, abs=EXACT)


def test_string_labels_equal_sklearn_with_the_named_positive_class() -> None:
    actual, predicted, score = _binary(500, seed=8)
    names = np.array(["legit", "fraud"])  # the model's classes_: positive is "fraud"
    truth, guess = names[actual], names[predicted]
    quality = accuracy.classification(truth.tolist(), guess.tolist(), score,
                                      classes=["legit", "fraud"])
    _assert_close(quality, _sklearn_scores(truth, guess, pos_label="fraud"))
    assert quality.metrics["roc_auc"] == pytest.approx(
        metrics.roc_auc_score(truth == "fraud", score), abs=EXACT)
    # Without classes, the sorted second label ("legit") is the positive one.
    unnamed = accuracy.classification(truth.tolist(), guess.tolist())
    _assert_close(unnamed, _sklearn_scores(truth, guess, pos_label="legit"))


def test_multiclass_string_labels_equal_sklearn() -> None:
    actual, predicted, proba = _multiclass(400, seed=9, k=3)
    names = np.array(["cat", "dog", "emu"])
    quality = accuracy.classification(names[actual], list(names[predicted]), proba,
                                      classes=names)
    _assert_close(quality, _sklearn_scores(names[actual], names[predicted], average="macro"))
    assert quality.metrics["roc_auc"] == pytest.approx(
        metrics.roc_auc_score(names[actual], proba, multi_class="ovr", labels=names), abs=EXACT)


def test_labels_from_json_match_the_model_predictions_as_strings() -> None:
    actual, predicted, score = _binary(300, seed=10)
    as_ints = accuracy.classification(actual, predicted, score, classes=np.array([0, 1]))
    # Feedback brings labels back as JSON: strings, integral floats, plain ints.
    mixed = [("1" if a else 0) if i % 3 == 0 else float(a) if i % 3 == 1 else int(a)
             for i, a in enumerate(actual.tolist())]
    as_mixed = accuracy.classification(mixed, predicted.astype(np.int64), score, classes=["0", "1"])
    assert as_mixed.metrics == as_ints.metrics


def test_numeric_labels_sort_numerically_for_the_positive_class() -> None:
    # Classes 2 and 10: sorted as numbers, 10 is the positive class (as scikit-learn sorts).
    actual = [2, 10, 10, 2, 10, 2]
    predicted = [2, 10, 2, 2, 10, 10]
    quality = accuracy.classification(actual, predicted)
    _assert_close(quality, _sklearn_scores(actual, predicted, pos_label=10))


def test_a_class_missing_from_the_window_does_not_drag_the_macro_average() -> None:
    actual = ["a", "b", "a", "b", "a"]
    predicted = ["a", "b", "b", "b", "a"]
    quality = accuracy.classification(actual, predicted, classes=["a", "b", "c"])
    _assert_close(quality, _sklearn_scores(actual, predicted, average="macro"))


def test_a_predicted_label_outside_the_binary_classes_turns_to_macro() -> None:
    actual = [0, 1, 1, 0, 2]
    predicted = [0, 1, 0, 0, 1]
    quality = accuracy.classification(actual, predicted, classes=[0, 1])
    _assert_close(quality, _sklearn_scores(actual, predicted, average="macro"))


def test_multiclass_auc_skips_classes_absent_from_the_labels() -> None:
    actual, predicted, proba = _multiclass(300, seed=11)
    keep = actual != 3
    quality = accuracy.classification(actual[keep], predicted[keep], proba[keep],
                                      classes=[0, 1, 2, 3])
    by_class = [metrics.roc_auc_score(actual[keep] == c, proba[keep][:, c]) for c in (0, 1, 2)]
    assert quality.metrics["roc_auc"] == pytest.approx(float(np.mean(by_class)), abs=EXACT)


def test_roc_auc_is_none_for_one_class_or_no_probabilities() -> None:
    one_class = accuracy.classification([1, 1, 1], [1, 0, 1], np.array([0.9, 0.2, 0.7]),
                                        classes=[0, 1])
    assert one_class.metrics["roc_auc"] is None and one_class.count == 3
    assert one_class.notes == ("roc_auc needs at least two classes among the labels",)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert math.isnan(metrics.roc_auc_score([1, 1, 1], [0.9, 0.2, 0.7]))
    # A single label and no classes: there is no telling which class the scores are of.
    single = accuracy.classification(["x", "x"], ["x", "x"], np.array([0.5, 0.6]))
    assert single.metrics["roc_auc"] is None and single.metrics["accuracy"] == 1.0
    no_scores = accuracy.classification([0, 1], [0, 1])
    assert no_scores.metrics["roc_auc"] is None and no_scores.metrics["f1"] == 1.0


def test_empty_window_has_no_metrics() -> None:
    quality = accuracy.classification([], [], np.array([]), classes=[0, 1])
    assert quality.count == 0 and set(quality.metrics) == set(accuracy.METRICS["classification"])
    assert all(value is None for value in quality.metrics.values())
    regression = accuracy.regression([], [])
    assert regression.count == 0 and all(v is None for v in regression.metrics.values())


def test_bad_classification_input_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="3 labels for 2 predictions"):
        accuracy.classification([0, 1, 1], [0, 1])
    with pytest.raises(errors.InvalidInput, match="distinct"):
        accuracy.classification([0, 1], [0, 1], classes=[1, "1"])
    with pytest.raises(errors.InvalidInput, match="classes"):
        accuracy.classification([0, 1], [0, 1], np.array([[0.2, 0.8], [0.6, 0.4]]))
    with pytest.raises(errors.InvalidInput, match="one row per prediction"):
        accuracy.classification([0, 1], [0, 1], np.array([0.2]), classes=[0, 1])
    with pytest.raises(errors.InvalidInput, match="binary classifier only"):
        accuracy.classification([0, 1, 2], [0, 1, 2], np.array([0.2, 0.4, 0.6]))
    with pytest.raises(errors.InvalidInput, match="finite"):
        accuracy.classification([0, 1], [0, 1], np.array([0.2, np.nan]))


# -- regression ------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [2, 50, 3000])
@pytest.mark.parametrize("seed", [1, 2])
def test_regression_equals_sklearn(size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    actual = rng.normal(100, 20, size)
    predicted = actual + rng.normal(0, 5, size)
    quality = accuracy.regression(actual, predicted.tolist())
    assert (quality.kind, quality.count) == ("regression", size)
    assert quality.metrics["mae"] == pytest.approx(
        metrics.mean_absolute_error(actual, predicted), abs=EXACT)
    assert quality.metrics["rmse"] == pytest.approx(
        metrics.root_mean_squared_error(actual, predicted), abs=EXACT)
    assert quality.metrics["r2"] == pytest.approx(metrics.r2_score(actual, predicted), abs=EXACT)


def test_regression_r2_edges_follow_sklearn() -> None:
    assert accuracy.regression([3.0], [2.0]).metrics["r2"] is None  # sklearn: nan
    constant = [5.0, 5.0, 5.0]
    assert accuracy.regression(constant, constant).metrics["r2"] == metrics.r2_score(constant,
                                                                                     constant)
    assert accuracy.regression(constant, [5, 6, 5]).metrics["r2"] == metrics.r2_score(
        constant, [5, 6, 5])


def test_bad_regression_input_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="finite"):
        accuracy.regression([1.0, np.inf], [1.0, 2.0])
    with pytest.raises(errors.InvalidInput, match="numbers"):
        accuracy.regression(["a"], [1.0])  # type: ignore[list-item]
    with pytest.raises(errors.InvalidInput, match="booleans"):
        accuracy.regression([True, 2.0], [1.0, 2.0])
    with pytest.raises(errors.InvalidInput, match="labels for"):
        accuracy.regression([1.0], [1.0, 2.0])


# -- check -----------------------------------------------------------------------------------

def test_check_minimum_for_scores() -> None:
    quality = accuracy.classification([0, 1, 1, 0], [0, 1, 0, 0])
    low = accuracy.check(quality, "f1", minimum=0.85, maximum=None)
    assert (low.rule, low.bound, low.breached) == ("f1", 0.85, True)
    assert low.value == pytest.approx(2 / 3) and "below the minimum 0.85" in low.detail
    met = accuracy.check(quality, "accuracy", minimum=0.75, maximum=None)
    assert met.breached is False and "meets" in met.detail  # equal to the bound holds


def test_check_maximum_for_errors() -> None:
    quality = accuracy.regression([1.0, 2.0, 3.0], [1.5, 2.0, 2.0])
    high = accuracy.check(quality, "mae", minimum=None, maximum=0.4)
    assert high.breached is True and high.value == 0.5 and "above the maximum 0.4" in high.detail
    assert accuracy.check(quality, "mae", minimum=None, maximum=0.5).breached is False


def test_check_without_labels_is_no_data() -> None:
    empty = accuracy.classification([], [])
    verdict = accuracy.check(empty, "f1", minimum=0.9, maximum=None)
    assert (verdict.value, verdict.breached, verdict.detail) == (None, None, "no labels")
    one_class = accuracy.classification([1, 1], [1, 0], np.array([0.9, 0.1]), classes=[0, 1])
    auc = accuracy.check(one_class, "roc_auc", minimum=0.7, maximum=None)
    assert auc.breached is None and auc.detail.startswith("no labels")


def test_check_refuses_unknown_metrics_and_bounds() -> None:
    quality = accuracy.regression([1.0, 2.0], [1.0, 2.0])
    with pytest.raises(errors.InvalidInput, match="regression reports no 'f1'"):
        accuracy.check(quality, "f1", minimum=0.5, maximum=None)
    with pytest.raises(errors.InvalidInput, match="exactly one"):
        accuracy.check(quality, "mae", minimum=None, maximum=None)
    with pytest.raises(errors.InvalidInput, match="exactly one"):
        accuracy.check(quality, "r2", minimum=0.1, maximum=0.9)


# -- coerce_label ----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("fraud", "fraud"), (1, "1"), (1.0, "1"), (True, "True"), (0, "0"), ("1", "1"),
])
def test_classifier_labels_become_strings(value: object, expected: str) -> None:
    assert accuracy.coerce_label(value, "classification") == expected
    assert accuracy.coerce_label(value, "classifier") == expected


@pytest.mark.parametrize(("value", "expected"), [(3, 3.0), (2.5, 2.5), (-1e300, -1e300)])
def test_regressor_labels_become_floats(value: object, expected: float) -> None:
    label = accuracy.coerce_label(value, "regression")
    assert label == expected and isinstance(label, float)


def test_bad_labels_name_the_prediction() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        accuracy.coerce_label("abc", "regression", prediction="p-17")
    assert str(caught.value) == ("label of prediction p-17 must be a number for a regressor, "
                                 "got 'abc'")
    with pytest.raises(errors.InvalidInput, match="must be a number for a regressor, got True"):
        accuracy.coerce_label(True, "regressor")
    with pytest.raises(errors.InvalidInput, match="finite"):
        accuracy.coerce_label(float("nan"), "regression")
    with pytest.raises(errors.InvalidInput, match="for a classifier, got 0.5"):
        accuracy.coerce_label(0.5, "classification", prediction="p-1")
    with pytest.raises(errors.InvalidInput, match="for a classifier, got None"):
        accuracy.coerce_label(None, "classification")
    with pytest.raises(errors.InvalidInput, match="for a classifier, got \\[1\\]"):
        accuracy.coerce_label([1], "classification")
    with pytest.raises(errors.InvalidInput, match="empty"):
        accuracy.coerce_label("", "classification")
    with pytest.raises(errors.InvalidInput, match="kind"):
        accuracy.coerce_label(1, "ranking")
