"""Alert state machine, retrain decision, idempotency keys and webhook bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from threadline.domain import errors
from threadline.monitoring import alerts

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _verdict(breached: bool | None, rule: str = "f1") -> alerts.Verdict:
    value = None if breached is None else (0.7 if breached else 0.9)
    return alerts.Verdict(rule, value, 0.85, breached, "detail")


def test_ok_fires_dedupes_and_resolves() -> None:
    state, transition = alerts.step(None, _verdict(False), T0)
    assert transition is None
    assert state == alerts.AlertState("f1", "ok", None, 0, T0)

    state, transition = alerts.step(state, _verdict(True), T0 + HOUR)
    assert transition == "fired"
    assert state == alerts.AlertState("f1", "firing", T0 + HOUR, 1, T0 + HOUR)

    # Breaching again while firing: no second notification, the streak grows, since stays.
    state, transition = alerts.step(state, _verdict(True), T0 + 2 * HOUR)
    assert transition is None
    assert state == alerts.AlertState("f1", "firing", T0 + HOUR, 2, T0 + 2 * HOUR)

    state, transition = alerts.step(state, _verdict(False), T0 + 3 * HOUR)
    assert transition == "resolved"
    assert state == alerts.AlertState("f1", "ok", T0 + 3 * HOUR, 0, T0 + 3 * HOUR)

    state, transition = alerts.step(state, _verdict(False), T0 + 4 * HOUR)
    assert transition is None and state.status == "ok" and state.since == T0 + 3 * HOUR


def test_first_window_can_fire_at_once() -> None:
    state, transition = alerts.step(None, _verdict(True), T0)
    assert transition == "fired" and state.consecutive == 1 and state.since == T0


def test_no_data_keeps_state_and_streak() -> None:
    firing, _ = alerts.step(None, _verdict(True), T0)
    same, transition = alerts.step(firing, _verdict(None), T0 + HOUR)
    assert transition is None and same == firing
    # The streak continues across the window without data.
    after, transition = alerts.step(same, _verdict(True), T0 + 2 * HOUR)
    assert transition is None and after.consecutive == 2
    fresh, transition = alerts.step(None, _verdict(None), T0)
    assert transition is None and fresh == alerts.initial("f1")


def test_no_data_window_can_be_judged_once_labels_arrive() -> None:
    state, _ = alerts.step(None, _verdict(False), T0)
    state, _ = alerts.step(state, _verdict(None), T0 + HOUR)
    state, transition = alerts.step(state, _verdict(True), T0 + HOUR)
    assert transition == "fired" and state.last_window_end == T0 + HOUR


@pytest.mark.parametrize("end", [T0, T0 - HOUR])
def test_a_window_already_evaluated_changes_nothing(end: datetime) -> None:
    firing, _ = alerts.step(None, _verdict(True), T0)
    again, transition = alerts.step(firing, _verdict(True), end)
    assert transition is None and again == firing
    stale, transition = alerts.step(firing, _verdict(False), end)
    assert transition is None and stale == firing


def test_a_verdict_on_another_rule_is_refused() -> None:
    state, _ = alerts.step(None, _verdict(True, rule="f1"), T0)
    with pytest.raises(errors.InvalidInput, match="'p99_ms'"):
        alerts.step(state, _verdict(True, rule="p99_ms"), T0 + HOUR)


# -- retraining -------------------------------------------------------------------------------

def test_retrain_needs_the_streak() -> None:
    decision = alerts.should_retrain(2, 3, None, T0, timedelta(hours=6))
    assert decision == alerts.RetrainDecision(False, "2 consecutive breaching windows, 3 needed")
    first = alerts.should_retrain(3, 3, None, T0, timedelta(hours=6))
    assert first.trigger and "never triggered before" in first.reason


def test_retrain_waits_for_the_cool_down() -> None:
    last = T0 - timedelta(hours=2)
    cooling = alerts.should_retrain(5, 3, last, T0, timedelta(hours=6))
    assert not cooling.trigger
    assert f"cooling down until {(last + timedelta(hours=6)).isoformat()}" in cooling.reason
    exactly = alerts.should_retrain(5, 3, last, last + timedelta(hours=6), timedelta(hours=6))
    assert exactly.trigger and "has passed" in exactly.reason
    # Too short a streak wins over the cool-down in the reason: it is what must change first.
    short = alerts.should_retrain(1, 3, last, T0, timedelta(hours=6))
    assert not short.trigger and "3 needed" in short.reason


def test_retrain_refuses_nonsense_settings() -> None:
    with pytest.raises(errors.InvalidInput, match="after"):
        alerts.should_retrain(1, 0, None, T0, HOUR)
    with pytest.raises(errors.InvalidInput, match="cool_down"):
        alerts.should_retrain(1, 1, None, T0, -HOUR)
    with pytest.raises(errors.InvalidInput, match="consecutive"):
        alerts.should_retrain(-1, 1, None, T0, HOUR)


# -- notifications -----------------------------------------------------------------------------

def test_idempotency_key_is_stable_and_distinguishes_episodes() -> None:
    key = alerts.idempotency_key("fraud-scorer", "f1", "fired", T0)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == alerts.idempotency_key("fraud-scorer", "f1", "fired", T0)
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert key == alerts.idempotency_key("fraud-scorer", "f1", "fired", paris)
    others = {
        alerts.idempotency_key("fraud-scorer", "f1", "resolved", T0),
        alerts.idempotency_key("fraud-scorer", "f1", "fired", T0 + HOUR),
        alerts.idempotency_key("fraud-scorer", "recall", "fired", T0),
    }
    assert key not in others and len(others) == 3
    # Fields cannot run into each other, whatever characters they hold.
    assert (alerts.idempotency_key("a\x1fb", "c", "fired", T0)
            != alerts.idempotency_key("a", "b\x1fc", "fired", T0))
    with pytest.raises(errors.InvalidInput, match="transition"):
        alerts.idempotency_key("fraud-scorer", "f1", "flapping", T0)  # type: ignore[arg-type]


def test_notification_body_is_json_native() -> None:
    verdict = alerts.Verdict("f1", 0.7, 0.85, True, "f1 0.7 is below the minimum 0.85")
    body = alerts.notification("fraud-scorer", "production", "f1", "critical", "fired", verdict,
                               T0 - HOUR, T0)
    assert body == {
        "event": "alert.fired", "deployment": "fraud-scorer", "environment": "production",
        "rule": "f1", "severity": "critical", "status": "firing", "value": 0.7, "bound": 0.85,
        "breached": True, "detail": "f1 0.7 is below the minimum 0.85",
        "window_start": "2026-03-01T11:00:00+00:00", "window_end": "2026-03-01T12:00:00+00:00",
    }
    assert json.loads(json.dumps(body, allow_nan=False)) == body


def test_resolved_notification_and_non_finite_values() -> None:
    verdict = alerts.Verdict("drift", float("inf"), 0.1, False, "held")
    body = alerts.notification("fraud-scorer", None, "drift", "warning", "resolved", verdict,
                               T0 - HOUR, T0)
    assert (body["event"], body["status"], body["value"], body["environment"]) == (
        "alert.resolved", "ok", None, None)
    json.dumps(body, allow_nan=False)
