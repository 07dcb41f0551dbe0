"""Reference-against-current histograms: np.histogram bins, under/overflow, top categories."""

from __future__ import annotations

import numpy as np
import pytest

from threadline.domain import errors
from threadline.monitoring import histograms


def test_numeric_bins_like_np_histogram() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=1000)
    edges = np.quantile(reference, np.linspace(0, 1, 11))
    ref_counts = np.histogram(reference, bins=edges)[0]
    current = np.clip(rng.normal(0.3, size=700), edges[0], edges[-1])
    result = histograms.numeric(edges, ref_counts.tolist(), current, feature="amount")
    assert result.feature == "amount" and result.kind == "numeric"
    assert result.reference_counts == tuple(ref_counts.tolist())
    assert result.current_counts == tuple(np.histogram(current, bins=edges)[0].tolist())
    assert (result.reference_total, result.current_total, result.dropped) == (1000, 700, 0)
    assert result.reference == pytest.approx(tuple(ref_counts / 1000))
    assert sum(result.current) == pytest.approx(1.0)
    assert len(result.labels) == 10  # nothing outside the range: no under/overflow bins


def test_numeric_edges_are_half_open_and_the_last_closed() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    result = histograms.numeric(edges, [3, 1], np.array([0.0, 1.0, 1.5, 2.0]))
    assert result.labels == ("[0, 1)", "[1, 2]")
    assert result.current_counts == (1, 3)
    assert result.reference == (0.75, 0.25) and result.current == (0.25, 0.75)


def test_numeric_underflow_overflow_and_dropped_values() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    current = np.array([-5.0, -0.1, 0.5, 1.5, 2.0, 2.5, 99.0, 7.0, np.nan, np.inf, -np.inf])
    result = histograms.numeric(edges, [4, 4], current, feature="x")
    assert result.labels == ("< 0", "[0, 1)", "[1, 2]", "> 2")
    assert result.current_counts == (2, 1, 2, 3)
    assert result.reference_counts == (0, 4, 4, 0)
    assert (result.current_total, result.dropped) == (8, 3)
    assert result.current == (2 / 8, 1 / 8, 2 / 8, 3 / 8)
    assert result.reference == (0.0, 0.5, 0.5, 0.0)
    only_over = histograms.numeric(edges, [4, 4], np.array([3.0]))
    assert only_over.labels == ("[0, 1)", "[1, 2]", "> 2")


def test_numeric_empty_current_and_constant_reference() -> None:
    empty = histograms.numeric(np.array([0.0, 1.0]), [5], np.array([np.nan]))
    assert (empty.current_total, empty.current, empty.dropped) == (0, (0.0,), 1)
    constant = histograms.numeric(np.array([3.0, 3.0]), [10], np.array([3.0, 3.0, 4.0]))
    assert constant.labels == ("[3, 3]", "> 3") and constant.current_counts == (2, 1)


def test_numeric_refuses_bad_edges_and_counts() -> None:
    with pytest.raises(errors.InvalidInput, match="edges"):
        histograms.numeric(np.array([1.0, 0.0]), [1], np.array([0.5]))
    with pytest.raises(errors.InvalidInput, match="edges"):
        histograms.numeric(np.array([1.0]), [], np.array([0.5]))
    with pytest.raises(errors.InvalidInput, match="one count per bin"):
        histograms.numeric(np.array([0.0, 1.0, 2.0]), [1], np.array([0.5]))
    with pytest.raises(errors.InvalidInput, match="non-negative integers"):
        histograms.numeric(np.array([0.0, 1.0]), [-1], np.array([0.5]))
    with pytest.raises(errors.InvalidInput, match="numbers"):
        histograms.numeric(np.array([0.0, 1.0]), [1], np.array(["a"]))


def test_categorical_top_and_other() -> None:
    reference = {"a": 50, "b": 30, "c": 10, "d": 10, "(other)": 5}
    current = {"a": 10, "b": 40, "d": 5, "new": 5}
    result = histograms.categorical(reference, current, top=2, feature="colour")
    assert result.labels == ("a", "b", "(other)")
    assert result.reference_counts == (50, 30, 25)  # c, d and the profile's own tail
    assert result.current_counts == (10, 40, 10)  # d and the unseen "new"
    assert (result.reference_total, result.current_total) == (105, 60)
    assert result.reference == pytest.approx((50 / 105, 30 / 105, 25 / 105))
    assert result.current == pytest.approx((1 / 6, 4 / 6, 1 / 6))


def test_categorical_ties_by_name_and_no_empty_other() -> None:
    result = histograms.categorical({"z": 5, "y": 5, "x": 9}, {"y": 1})
    assert result.labels == ("x", "y", "z")
    assert result.current == (0.0, 1.0, 0.0)
    empty = histograms.categorical({}, {})
    assert (empty.labels, empty.reference_total, empty.current_total) == ((), 0, 0)


def test_categorical_refuses_bad_input() -> None:
    with pytest.raises(errors.InvalidInput, match="top"):
        histograms.categorical({"a": 1}, {"a": 1}, top=0)
    with pytest.raises(errors.InvalidInput, match="non-negative integers"):
        histograms.categorical({"a": 1.5}, {"a": 1})  # type: ignore[dict-item]
