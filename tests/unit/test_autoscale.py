"""The local autoscaler's decision: up at once, down only after the window, idle to minimum, clamps."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from threadline.capacity import autoscale
from threadline.capacity.autoscale import Observation, Proposal
from threadline.domain import errors

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def steady(load: float, requests: int = 100, *, seconds: int = 600) -> list[Observation]:
    """One observation every 15 s for ``seconds``, all at ``load``."""
    return [Observation(ago(s), load, requests) for s in range(seconds, -1, -15)]


def decide(current: int, observations: list[Observation], *, minimum: int = 1, maximum: int = 10,
           history: tuple[Proposal, ...] = (), target: float = 2.0) -> autoscale.Decision:
    return autoscale.decide(current, minimum, maximum, observations, target, NOW, history=history)


def test_scale_up_is_immediate() -> None:
    decision = decide(1, steady(7.5))
    assert decision.desired == decision.wanted == 4
    assert decision.reason == "load 7.5 over target 2 per replica: 4 replicas"


def test_scale_up_ignores_the_window() -> None:
    decision = decide(2, steady(20), history=(Proposal(ago(10), 2),))
    assert decision.desired == 10


def test_no_flapping_down_within_the_window() -> None:
    history = (Proposal(ago(50), 4), Proposal(ago(30), 3))
    decision = decide(4, steady(1.5), history=history)
    assert decision.desired == 4 and decision.wanted == 1
    assert decision.reason.startswith("holding 4: the last 60 s wanted up to 4")


def test_down_to_the_highest_wish_of_the_window() -> None:
    decision = decide(4, steady(1.5), history=(Proposal(ago(90), 4), Proposal(ago(30), 3)))
    assert decision.desired == 3 and decision.wanted == 1
    assert decision.reason.endswith("but the last 60 s wanted up to 3: 3 replicas")


def test_down_once_the_window_has_passed() -> None:
    decision = decide(4, steady(1.5), history=(Proposal(ago(61), 4), Proposal(ago(120), 9)))
    assert decision.desired == 1
    assert decision.reason == "load 1.5 over target 2 per replica: 1 replica"


def test_a_loop_that_remembers_wanted_scales_down_after_one_window() -> None:
    history: list[Proposal] = [Proposal(ago(15), 4)]
    current = 4
    for step in range(6):  # every 15 s, load is down to 1 replica's worth
        now = NOW + timedelta(seconds=15 * step)
        decision = autoscale.decide(current, 1, 10, [Observation(now, 1.0, 50)], 2.0, now, history=history)
        history.append(Proposal(now, decision.wanted))
        current = decision.desired
        assert current == (4 if 15 * step < 45 else 1)


def test_idle_goes_to_minimum_even_inside_the_window() -> None:
    quiet = steady(0, requests=0, seconds=400)
    decision = decide(3, quiet, minimum=1, history=(Proposal(ago(10), 3),))
    assert decision.desired == 1
    assert decision.reason == "idle for 6m40s: scale to minimum 1"


def test_idle_is_counted_from_the_last_request() -> None:
    observations = [Observation(ago(600), 1, 10), Observation(ago(300), 0, 3), *steady(0, requests=0, seconds=285)]
    decision = decide(2, observations, minimum=0)
    assert decision.desired == 0 and decision.reason == "idle for 5m: scale to minimum 0"


def test_not_idle_before_idle_after_or_with_work_in_flight() -> None:
    assert decide(3, steady(0, requests=0, seconds=120), minimum=0, history=(Proposal(ago(10), 3),)).desired == 3
    busy_but_quiet = steady(0, requests=0, seconds=400)[:-1] + [Observation(NOW, 1.0, 0)]
    assert decide(1, busy_but_quiet, minimum=0).desired == 1


def test_scale_to_zero_keeps_one_while_requests_arrive_and_stays_at_zero_without() -> None:
    assert decide(3, steady(0.2), minimum=0).desired == 1
    between_requests = decide(3, steady(0, requests=5), minimum=0)
    assert between_requests.desired == 1
    assert between_requests.reason == "load 0 over target 2 per replica: 0 replicas, kept at 1 until idle"
    asleep = decide(0, steady(0, requests=0, seconds=60), minimum=0)
    assert asleep.desired == 0
    woken = decide(0, [Observation(NOW, 3.0, 5)], minimum=0)
    assert woken.desired == 2


def test_clamped_to_the_bounds() -> None:
    capped = decide(2, steady(100), maximum=5)
    assert capped.desired == 5
    assert capped.reason == "load 100 over target 2 per replica: 50 replicas, capped at maximum 5"
    raised = decide(3, steady(0.5), minimum=3)
    assert raised.desired == 3 and raised.reason.endswith("1 replica, raised to minimum 3")
    above_max = decide(8, steady(7.5), maximum=5, history=(Proposal(ago(10), 8),))
    assert above_max.desired == 5
    below_min = decide(1, [], minimum=2)
    assert below_min.desired == 2 and below_min.reason == "no observations yet: holding 2 replicas"


def test_observations_and_history_from_the_future_are_ignored() -> None:
    later = [Observation(NOW + timedelta(seconds=5), 50, 100)]
    assert decide(2, steady(4) + later).desired == 2
    assert decide(4, steady(1), history=(Proposal(NOW + timedelta(seconds=5), 4),)).desired == 1


def test_float_load_does_not_round_up_a_replica_too_many() -> None:
    assert autoscale.decide(1, 1, 10, [Observation(NOW, 0.6, 1)], 0.2, NOW).desired == 3


@pytest.mark.parametrize(("minimum", "maximum", "target", "field"), [
    (3, 2, 1.0, "replicas"), (0, 0, 1.0, "replicas"), (1, 2, 0.0, "target_per_replica"),
    (1, 2, float("nan"), "target_per_replica")])
def test_bad_settings_are_refused(minimum: int, maximum: int, target: float, field: str) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        autoscale.decide(1, minimum, maximum, [], target, NOW)
    assert caught.value.field == field
