"""Service levels: percentiles of successful requests as np.percentile, error rate, bounds."""

from __future__ import annotations

import numpy as np
import pytest

from threadline.domain import errors
from threadline.monitoring import latency


@pytest.mark.parametrize("size", [1, 2, 17, 10_000])
def test_percentiles_equal_numpy_over_successful_requests(size: int) -> None:
    rng = np.random.default_rng(size)
    durations = rng.lognormal(3, 0.5, size)
    ok = rng.uniform(size=size) > 0.1
    ok[0] = True
    levels = latency.service_levels(durations, ok)
    expected = np.percentile(durations[ok], [50, 95, 99])
    assert (levels.p50, levels.p95, levels.p99) == pytest.approx(tuple(expected), abs=1e-12)
    assert levels.count == size and levels.errors == int((~ok).sum())
    assert levels.error_rate == pytest.approx((~ok).sum() / size)


def test_failed_requests_do_not_count_in_latency() -> None:
    durations = np.array([10.0, 20.0, 30.0, 1.0, 1.0])
    ok = np.array([True, True, True, False, False])
    levels = latency.service_levels(durations, ok)
    assert levels.p50 == 20.0 and levels.errors == 2 and levels.error_rate == 0.4
    # The linear method interpolates between 20 and 30 for the 99th percentile.
    assert levels.p99 == pytest.approx(29.8)


def test_untimed_requests_are_left_out_of_percentiles() -> None:
    levels = latency.service_levels(np.array([5.0, np.nan, 7.0]), np.array([1, 0, 1]))
    assert (levels.count, levels.errors, levels.p50) == (3, 1, 6.0)


def test_empty_window_and_all_failed() -> None:
    empty = latency.service_levels(np.array([]), np.array([], dtype=bool))
    assert empty == latency.ServiceLevels(0, 0, None, None, None, None)
    failed = latency.service_levels(np.array([3.0, 4.0]), np.array([False, False]))
    assert (failed.count, failed.errors, failed.error_rate, failed.p99) == (2, 2, 1.0, None)


def test_bad_input_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="2 outcomes for 3 durations"):
        latency.service_levels(np.array([1.0, 2.0, 3.0]), np.array([True, False]))
    with pytest.raises(errors.InvalidInput, match="negative"):
        latency.service_levels(np.array([-1.0]), np.array([True]))
    with pytest.raises(errors.InvalidInput, match="booleans"):
        latency.service_levels(np.array([1.0]), np.array(["yes"]))
    with pytest.raises(errors.InvalidInput, match="booleans"):
        latency.service_levels(np.array([1.0]), np.array([2]))


def test_check_gives_one_verdict_per_bound() -> None:
    levels = latency.service_levels(np.arange(1.0, 101.0), np.array([True] * 98 + [False] * 2))
    assert levels.p99 == pytest.approx(np.percentile(np.arange(1.0, 99.0), 99))
    slow, failing = latency.check(levels, p99_ms=50.0, max_error_rate=0.01)
    assert (slow.rule, slow.bound, slow.breached) == ("p99_ms", 50.0, True)
    assert "above the maximum 50" in slow.detail
    assert (failing.rule, failing.value, failing.breached) == ("error_rate", 0.02, True)
    assert "2 of 100" in failing.detail
    fine = latency.check(levels, p99_ms=200.0, max_error_rate=0.02)  # equal to the bound holds
    assert [v.breached for v in fine] == [False, False]
    assert [v.rule for v in latency.check(levels, None, 0.5)] == ["error_rate"]
    assert latency.check(levels, None, None) == []


def test_check_without_data() -> None:
    empty = latency.service_levels(np.array([]), np.array([], dtype=bool))
    verdicts = latency.check(empty, p99_ms=50.0, max_error_rate=0.01)
    assert [(v.breached, v.detail) for v in verdicts] == [(None, "no requests")] * 2
    failed = latency.service_levels(np.array([3.0]), np.array([False]))
    p99, rate = latency.check(failed, p99_ms=50.0, max_error_rate=0.01)
    assert (p99.breached, p99.detail) == (None, "no successful requests")
    assert rate.breached is True
