from __future__ import annotations

from collections import Counter

import pytest

from threadline.domain import errors
from threadline.serving.ratelimit import RateLimiter
from threadline.serving.traffic import TrafficSplit


def test_split_is_exact_over_every_cycle() -> None:
    split = TrafficSplit({1: 90, 2: 10})
    for _ in range(5):
        counts = Counter(split.choose() for _ in range(100))
        assert counts == {1: 90, 2: 10}


def test_split_interleaves_instead_of_blocks() -> None:
    split = TrafficSplit({1: 1, 2: 1})
    assert [split.choose() for _ in range(6)] == [1, 2, 1, 2, 1, 2]


def test_sticky_keys_always_get_the_same_version_and_shares_hold() -> None:
    split = TrafficSplit({1: 80, 2: 20})
    assert {split.choose("user-42") for _ in range(20)} == {split.choose("user-42")}
    counts = Counter(split.choose(f"user-{i}") for i in range(20_000))
    assert abs(counts[2] / 20_000 - 0.2) < 0.02


def test_zero_weight_version_gets_nothing_and_bad_weights_are_refused() -> None:
    split = TrafficSplit({1: 100, 2: 0})
    assert {split.choose() for _ in range(50)} == {1}
    for bad in ({}, {1: 0}, {1: -5, 2: 10}):
        with pytest.raises(errors.InvalidInput):
            TrafficSplit(bad)


def test_token_bucket_allows_a_burst_then_refills() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)
    assert limiter.take("b") == 0.0  # buckets are per caller
    now[0] += 0.5
    assert limiter.take("a") == 0.0
    assert RateLimiter(rate=0, burst=1).take("a") == 0.0
