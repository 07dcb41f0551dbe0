"""Drift statistics: equal to scipy to 1e-9, planted drift flagged, edges of the data handled."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance

from threadline.domain import errors
from threadline.monitoring import drift

EXACT = 1e-9
SIZES = (50, 1000, 5000)


def _pair(size: int, seed: int, shift: float = 0.0,
          scale: float = 1.3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=size), rng.normal(loc=shift, scale=scale, size=size * 2 + 7)


def _open_histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """np.histogram on the reference edges, with the outer bins stretched to -inf and +inf."""
    return np.histogram(values, bins=np.concatenate(([-np.inf], edges[1:-1], [np.inf])))[0]


def _psi_formula(reference: np.ndarray, current: np.ndarray) -> float:
    r = reference / reference.sum()
    c = current / current.sum()
    r, c = np.where(r == 0, 1e-4, r), np.where(c == 0, 1e-4, c)
    return float(np.sum((c - r) * np.log(c / r)))


# -- numeric: equal to scipy -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seed", [1, 2])
def test_ks_equals_scipy(size: int, seed: int) -> None:
    ref, cur = _pair(size, seed, shift=0.1)
    result = drift.numeric(ref, cur, method="ks", feature="x")
    expected = stats.ks_2samp(ref, cur)
    assert result.statistic == pytest.approx(expected.pvalue, abs=EXACT)
    assert result.test_statistic == pytest.approx(expected.statistic, abs=EXACT)
    assert (result.feature, result.kind, result.method) == ("x", "numeric", "ks")
    assert (result.reference_size, result.current_size, result.missing) == (size, 2 * size + 7, 0)
    assert result.higher_is_drift is False and result.threshold == 0.05
    assert result.drifted is bool(expected.pvalue < 0.05)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seed", [3, 4])
def test_wasserstein_equals_scipy_over_reference_std(size: int, seed: int) -> None:
    ref, cur = _pair(size, seed, shift=0.05)
    cur = np.round(cur, 1)  # ties between and within the samples
    result = drift.numeric(ref, cur, method="wasserstein")
    raw = stats.wasserstein_distance(ref, cur)
    assert result.statistic == pytest.approx(raw / np.std(ref), abs=EXACT)
    assert result.test_statistic == pytest.approx(raw, abs=EXACT)
    assert result.higher_is_drift is True and result.drifted is bool(raw / np.std(ref) > 0.1)


@pytest.mark.parametrize("size", SIZES)
def test_jensenshannon_equals_scipy_on_reference_decile_bins(size: int) -> None:
    ref, cur = _pair(size, seed=5, shift=0.3)
    edges = np.quantile(ref, np.linspace(0, 1, 11))
    expected = distance.jensenshannon(_open_histogram(ref, edges), _open_histogram(cur, edges))
    result = drift.numeric(ref, cur, method="jensenshannon")
    assert result.statistic == pytest.approx(expected, abs=EXACT)
    # The profile's edges give the same bins as deciles of the same data.
    with_edges = drift.numeric(ref, cur, method="jensenshannon", reference_edges=np.unique(edges))
    assert with_edges.statistic == pytest.approx(expected, abs=EXACT)


@pytest.mark.parametrize("size", SIZES)
def test_psi_matches_formula_on_reference_deciles(size: int) -> None:
    ref, cur = _pair(size, seed=6, shift=0.4)
    edges = np.quantile(ref, np.linspace(0, 1, 11))
    expected = _psi_formula(_open_histogram(ref, edges), _open_histogram(cur, edges))
    result = drift.numeric(ref, cur, method="psi")
    assert result.statistic == pytest.approx(expected, abs=EXACT)
    assert result.threshold == 0.2 and result.drifted is (expected > 0.2)


def test_psi_on_given_edges_by_hand() -> None:
    # Bins (-inf, 1), [1, 2), [2, +inf): reference 2/4, 1/4, 1/4; current 0 (-> 1e-4), 2/4, 2/4,
    # with 5.0 and -3.0 past the outer edges still counted in the outer bins.
    ref = np.array([0.5, 0.5, 1.5, 2.5])
    cur = np.array([1.0, 1.5, 2.0, 5.0])
    expected = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 2 * (0.5 - 0.25) * math.log(0.5 / 0.25)
    assert expected == pytest.approx(4.6044, abs=1e-4)
    result = drift.numeric(ref, cur, method="psi", reference_edges=np.array([0.0, 1.0, 2.0, 3.0]))
    assert result.statistic == pytest.approx(expected, abs=EXACT) and result.drifted
    same = drift.numeric(ref, np.array([-3.0, 0.2, 1.2, 2.2]), method="psi",
                         reference_edges=np.array([0.0, 1.0, 2.0, 3.0]))
    assert same.statistic == pytest.approx(0.0, abs=EXACT) and not same.drifted


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40),
       st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40))
def test_ks_and_wasserstein_equal_scipy_on_any_sample(ref: list[float], cur: list[float]) -> None:
    ks = drift.numeric(np.array(ref), np.array(cur), method="ks")
    assert ks.statistic == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=EXACT)
    if np.std(ref) > 0:
        w = drift.numeric(np.array(ref), np.array(cur), method="wasserstein", threshold=1.0)
        expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert w.statistic == pytest.approx(expected, rel=1e-9, abs=EXACT)


def test_inputs_are_not_mutated() -> None:
    ref, cur = _pair(100, seed=7)
    cur[3] = np.nan
    before = ref.copy(), cur.copy()
    for method in drift.METHODS["numeric"]:
        drift.numeric(ref, cur, method=method)
    np.testing.assert_array_equal(ref, before[0])
    np.testing.assert_array_equal(cur, before[1])


# -- numeric: verdicts and defaults ------------------------------------------------------------


@pytest.mark.parametrize("size", [1000, 5000])
def test_planted_shift_is_flagged_and_same_distribution_is_not(size: int) -> None:
    rng = np.random.default_rng(8)
    ref = rng.normal(10.0, 2.0, size)
    same = drift.numeric(ref, rng.normal(10.0, 2.0, size))
    shifted = drift.numeric(ref, rng.normal(11.0, 2.0, size))
    assert same.method == shifted.method == ("ks" if size <= 1000 else "wasserstein")
    assert not same.drifted and shifted.drifted


def test_default_is_ks_up_to_1000_reference_values_then_wasserstein() -> None:
    rng = np.random.default_rng(9)
    cur = rng.normal(size=300)
    assert drift.numeric(rng.normal(size=1000), cur).method == "ks"
    assert drift.numeric(rng.normal(size=1001), cur).method == "wasserstein"
    # Dropped values do not count towards the reference size.
    assert drift.numeric(np.append(rng.normal(size=1000), np.nan), cur).method == "ks"


def test_threshold_overrides_default() -> None:
    ref, cur = _pair(1000, seed=10, shift=0.05, scale=1.0)
    result = drift.numeric(ref, cur, method="wasserstein")
    assert result.statistic is not None
    assert 0.0 < result.statistic < 0.1 and not result.drifted
    tight = drift.numeric(ref, cur, method="wasserstein", threshold=result.statistic / 2)
    assert tight.drifted and tight.threshold == pytest.approx(result.statistic / 2)


def test_nan_none_and_inf_are_dropped_and_counted() -> None:
    ref, cur = _pair(200, seed=11)
    dirty_ref = np.concatenate((ref, [np.nan, np.inf]))
    dirty_cur = np.array([*cur.tolist(), None, float("nan"), None, -math.inf], dtype=object)
    result = drift.numeric(dirty_ref, dirty_cur, method="ks")
    assert (result.reference_size, result.current_size, result.missing) == (200, cur.size, 4)
    assert result.statistic == pytest.approx(stats.ks_2samp(ref, cur).pvalue, abs=EXACT)


def test_empty_current_is_no_data_never_drift() -> None:
    ref = np.random.default_rng(12).normal(size=100)
    for method in drift.METHODS["numeric"]:
        result = drift.numeric(ref, np.array([np.nan, np.nan]), method=method)
        assert (result.statistic, result.drifted, result.detail) == (None, False, "no data")
        assert (result.current_size, result.missing) == (0, 2)
    assert drift.numeric(ref, np.array([])).detail == "no data"


def test_empty_reference_is_not_drift() -> None:
    result = drift.numeric(np.array([np.nan]), np.array([1.0, 2.0]))
    assert (result.statistic, result.drifted, result.detail) == (None, False, "no reference data")


def test_constant_reference() -> None:
    ref = np.full(50, 3.0)
    same = drift.numeric(ref, np.full(20, 3.0), method="wasserstein")
    assert same.statistic == 0.0 and not same.drifted and "std 0" in (same.detail or "")
    moved = drift.numeric(ref, np.full(20, 3.5), method="wasserstein")
    assert moved.statistic == math.inf and moved.drifted and "inf" in (moved.detail or "")
    assert moved.test_statistic == pytest.approx(stats.wasserstein_distance(ref, np.full(20, 3.5)))
    # The profile's edges for a constant column are [v, v]; PSI still sees values move off it.
    psi = drift.numeric(ref, np.full(20, 3.5), method="psi", reference_edges=np.array([3.0, 3.0]))
    assert psi.drifted
    assert not drift.numeric(ref, np.full(20, 3.0), method="psi").drifted


# -- categorical -------------------------------------------------------------------------------


def _counts(seed: int, total: int, probabilities: list[float]) -> dict[str, int]:
    draws = np.random.default_rng(seed).multinomial(total, probabilities)
    return {name: int(n) for name, n in zip("abcdefgh", draws)}


@pytest.mark.parametrize("total", SIZES)
def test_categorical_statistics_equal_scipy(total: int) -> None:
    ref = _counts(13, total, [0.4, 0.3, 0.2, 0.1])
    cur = _counts(14, total * 3, [0.35, 0.3, 0.2, 0.15])
    table = np.array([[ref[k] for k in "abcd"], [cur[k] for k in "abcd"]])
    chi = drift.categorical(ref, cur, method="chisquare")
    expected = stats.chi2_contingency(table)
    assert chi.statistic == pytest.approx(expected.pvalue, abs=EXACT)
    assert chi.test_statistic == pytest.approx(expected.statistic, abs=EXACT)
    assert chi.higher_is_drift is False and chi.kind == "categorical"
    js = drift.categorical(ref, cur, method="jensenshannon")
    assert js.statistic == pytest.approx(distance.jensenshannon(table[0], table[1]), abs=EXACT)
    psi = drift.categorical(ref, cur, method="psi")
    assert psi.statistic == pytest.approx(_psi_formula(table[0], table[1]), abs=EXACT)
    assert (js.reference_size, js.current_size) == (total, total * 3)


def test_categorical_unseen_categories_and_categories_absent_from_both() -> None:
    ref = {"a": 40, "b": 30, "gone": 0}
    cur = {"a": 20, "b": 25, "new": 15, "newer": 5, "gone": 0}
    table = np.array([[40, 30, 0, 0], [20, 25, 15, 5]])
    chi = drift.categorical(ref, cur, method="chisquare")
    assert chi.statistic == pytest.approx(stats.chi2_contingency(table).pvalue, abs=EXACT)
    assert chi.drifted and chi.detail == "categories not in the reference (2): 'new', 'newer'"
    js = drift.categorical(ref, cur, method="jensenshannon")
    assert js.statistic == pytest.approx(distance.jensenshannon(table[0], table[1]), abs=EXACT)
    assert js.drifted


def test_categorical_two_categories_uses_scipys_yates_correction() -> None:
    ref, cur = {"yes": 30, "no": 20}, {"yes": 18, "no": 25}
    expected = stats.chi2_contingency([[30, 20], [18, 25]])
    assert drift.categorical(ref, cur).statistic == pytest.approx(expected.pvalue, abs=EXACT)


def test_categorical_defaults_and_no_data() -> None:
    small = _counts(15, 1000, [0.5, 0.5])
    large = _counts(15, 1001, [0.5, 0.5])
    assert drift.categorical(small, small).method == "chisquare"
    assert drift.categorical(large, large).method == "jensenshannon"
    assert not drift.categorical(large, large).drifted
    empty = drift.categorical(small, {"a": 0})
    assert (empty.statistic, empty.drifted, empty.detail) == (None, False, "no data")
    assert empty.current_size == 0
    assert drift.categorical(small, {}).detail == "no data"
    single = drift.categorical({"a": 10}, {"a": 4})
    assert single.statistic == pytest.approx(1.0) and not single.drifted


def test_categorical_rejects_bad_counts() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drift.categorical({"a": -1}, {"a": 2})
    assert caught.value.field == "reference_counts"
    with pytest.raises(errors.InvalidInput):
        drift.categorical({"a": 1}, {"a": 2.5})  # type: ignore[dict-item]


# -- dataset and configuration -----------------------------------------------------------------


def _feature(name: str, drifted: bool, statistic: float | None = 0.5) -> drift.FeatureDrift:
    return drift.FeatureDrift(feature=name, kind="numeric", method="psi", statistic=statistic,
                              threshold=0.2, drifted=drifted, reference_size=10, current_size=10,
                              missing=0, detail=None if statistic is not None else "no data",
                              higher_is_drift=True)


def test_dataset_drifts_when_at_least_share_of_features_with_data_drift() -> None:
    half = drift.dataset([_feature("a", True), _feature("b", False), _feature("c", True),
                          _feature("d", False), _feature("e", False, statistic=None)])
    assert half.drifted and (half.drifted_count, half.considered) == (2, 4)
    assert half.no_data == ("e",) and half.drifted_share == 0.5 and len(half.features) == 5
    quarter = drift.dataset([_feature("a", True), _feature("b", False), _feature("c", False),
                             _feature("d", False)])
    assert not quarter.drifted
    assert drift.dataset([_feature("a", True)] * 3 + [_feature("b", False)] * 27, share=0.1).drifted
    nothing = drift.dataset([_feature("x", False, statistic=None)])
    assert not nothing.drifted and nothing.considered == 0 and nothing.drifted_share == 0.0
    assert not drift.dataset([]).drifted
    with pytest.raises(errors.InvalidInput):
        drift.dataset([], share=0.0)


def test_unknown_method_names_it_and_lists_the_known_ones() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drift.numeric(np.ones(3), np.ones(3), method="kl")
    assert caught.value.field == "method"
    message = str(caught.value)
    assert "'kl'" in message and all(m in message for m in drift.METHODS["numeric"])
    with pytest.raises(errors.InvalidInput, match="chisquare"):
        drift.categorical({"a": 1}, {"a": 1}, method="ks")
    with pytest.raises(errors.InvalidInput, match="unknown numeric drift method 'chisquare'"):
        drift.numeric(np.ones(3), np.ones(3), method="chisquare")


@pytest.mark.parametrize("threshold", [0.0, -0.1, math.nan, math.inf])
def test_threshold_must_be_positive(threshold: float) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drift.numeric(np.ones(3), np.ones(3), method="psi", threshold=threshold)
    assert caught.value.field == "threshold"


def test_bad_values_and_edges_are_invalid_input() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drift.numeric(np.array(["a", "b"]), np.ones(3))
    assert caught.value.field == "reference"
    with pytest.raises(errors.InvalidInput):
        drift.numeric(np.ones((2, 2)), np.ones(3))
    with pytest.raises(errors.InvalidInput) as caught:
        drift.numeric(np.ones(3), np.ones(3), method="psi", reference_edges=np.array([2.0, 1.0]))
    assert caught.value.field == "reference_edges"


def test_constants_agree() -> None:
    every = set(drift.METHODS["numeric"]) | set(drift.METHODS["categorical"])
    assert every == set(drift.DEFAULT_THRESHOLDS)
    assert drift.P_VALUE_METHODS <= every


def test_a_kept_drift_result_reads_back_equal() -> None:
    from datetime import datetime, timezone

    from threadline.monitoring import service

    rng = np.random.default_rng(0)
    features = [drift.numeric(rng.normal(size=200), rng.normal(size=100), feature="a"),
                drift.categorical({"x": 5, "y": 5}, {"x": 9, "y": 1}, feature="b")]
    result = service.DriftResult("d", "m", 1, datetime(2026, 1, 1, tzinfo=timezone.utc),
                                 datetime(2026, 1, 1, 1, tzinfo=timezone.utc), 100, drift.dataset(features), ("p",))
    kept = orjson.loads(orjson.dumps(service._drift_to_json(result)))
    assert service._drift_from_json(kept) == result
