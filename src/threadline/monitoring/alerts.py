"""Alert rules over time: verdicts in, state transitions, retrain decisions and webhook bodies out.

A monitoring check (drift, accuracy, latency) judges one window and returns a ``Verdict``. This
module owns what happens across windows, and nothing else: it reads no clock (window ends and
"now" are passed in), stores nothing (the caller keeps the ``AlertState`` and hands it back) and
sends nothing (``notification`` builds the body the webhook outbox carries).

The state machine, per (deployment, rule)::

    ok ──breached──▶ firing        transition "fired"
    firing ──breached──▶ firing    no transition: one notification per episode, not per window
    firing ──held──▶ ok            transition "resolved"
    any ──no data──▶ unchanged     a window without data is not evidence either way

A window is evaluated once: a ``window_end`` at or before the last one evaluated changes nothing,
so a scheduler that re-runs after a crash, or two replicas racing, never fire twice.

Retraining fires on a streak, not a single bad window (``should_retrain``), and then waits a
cool-down, because a retraining job takes hours and a webhook per window would start a dozen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from threadline.domain import errors

Status = Literal["ok", "firing"]
Transition = Literal["fired", "resolved"]
TRANSITIONS: tuple[Transition, ...] = ("fired", "resolved")


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One rule judged on one window.

    ``breached`` is None when the window had no data for the rule (no labels, no requests):
    such a verdict neither fires nor resolves an alert. ``value`` and ``bound`` are what was
    compared (``value`` None when there was nothing to compute); ``detail`` says it in words.
    """

    rule: str
    value: float | None
    bound: float | None
    breached: bool | None
    detail: str


@dataclasses.dataclass(frozen=True)
class AlertState:
    """Where one rule stands after the windows evaluated so far.

    ``since`` is the end of the window that moved the rule into its status (None for a rule that
    has never fired); ``consecutive`` counts the breaching windows in a row up to
    ``last_window_end``, windows without data skipped.
    """

    rule: str
    status: Status
    since: datetime | None
    consecutive: int
    last_window_end: datetime | None


@dataclasses.dataclass(frozen=True)
class RetrainDecision:
    """Whether to call the retrain webhook now, and why (shown to operators as is)."""

    trigger: bool
    reason: str


def initial(rule: str) -> AlertState:
    """The state of a rule that has never been evaluated."""
    return AlertState(rule=rule, status="ok", since=None, consecutive=0, last_window_end=None)


def step(state: AlertState | None, verdict: Verdict,
         window_end: datetime) -> tuple[AlertState, Transition | None]:
    """The state after ``verdict`` on the window ending at ``window_end``, and the transition.

    ``state`` None starts from ``initial(verdict.rule)``. Returns the input state unchanged
    (and no transition) for a window already evaluated and for a verdict without data; in the
    latter case ``last_window_end`` does not move either, so the window can be judged again
    once its data arrives (labels come back late, from human review).
    """
    current = initial(verdict.rule) if state is None else state
    if current.rule != verdict.rule:
        raise errors.InvalidInput(f"a verdict on {verdict.rule!r} cannot move the alert of "
                                  f"{current.rule!r}", field="rule")
    if current.last_window_end is not None and window_end <= current.last_window_end:
        return current, None
    if verdict.breached is None:
        return current, None
    if verdict.breached:
        streak = current.consecutive + 1
        if current.status == "firing":
            return dataclasses.replace(current, consecutive=streak,
                                       last_window_end=window_end), None
        return AlertState(current.rule, "firing", window_end, streak, window_end), "fired"
    if current.status == "firing":
        return AlertState(current.rule, "ok", window_end, 0, window_end), "resolved"
    return dataclasses.replace(current, consecutive=0, last_window_end=window_end), None


def should_retrain(consecutive: int, after: int, last_trigger: datetime | None, now: datetime,
                   cool_down: timedelta) -> RetrainDecision:
    """Trigger retraining once ``after`` windows in a row breached and the cool-down has passed.

    The cool-down runs from ``last_trigger`` (the previous trigger, None when there was none);
    it has passed at ``last_trigger + cool_down`` exactly.
    """
    if after < 1:
        raise errors.InvalidInput(f"must be at least 1, got {after!r}", field="after")
    if consecutive < 0:
        raise errors.InvalidInput(f"must not be negative, got {consecutive!r}",
                                  field="consecutive")
    if cool_down < timedelta(0):
        raise errors.InvalidInput(f"must not be negative, got {cool_down}", field="cool_down")
    streak = f"{consecutive} consecutive breaching window{'' if consecutive == 1 else 's'}"
    if consecutive < after:
        return RetrainDecision(False, f"{streak}, {after} needed")
    if last_trigger is None:
        return RetrainDecision(True, f"{streak} ({after} needed); never triggered before")
    until = last_trigger + cool_down
    if now < until:
        return RetrainDecision(False, f"{streak}, but cooling down until {until.isoformat()} "
                                      f"(last trigger {last_trigger.isoformat()})")
    return RetrainDecision(True, f"{streak} ({after} needed); the cool-down after the last "
                                 f"trigger at {last_trigger.isoformat()} has passed")


def idempotency_key(deployment: str, rule: str, transition: Transition, since: datetime) -> str:
    """A stable key for one notification, so a receiver can drop retried deliveries.

    ``since`` is the state's ``since`` after the transition (when the rule started firing, or
    resolved): it names the episode, so the same alert firing again next week gets a new key.
    Aware times count in UTC, so the same instant in two zones gives the same key.
    """
    _transition(transition)
    moment = since.astimezone(UTC) if since.tzinfo is not None else since
    # A JSON array keeps the fields apart whatever characters they hold.
    material = json.dumps(["threadline.alert.v1", deployment, rule, transition, moment.isoformat()])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def notification(deployment: str, environment: str | None, rule: str, severity: str,
                 transition: Transition, verdict: Verdict, window_start: datetime,
                 window_end: datetime) -> dict[str, Any]:
    """The JSON body posted to webhooks for a transition: ``alert.fired`` or ``alert.resolved``.

    Every value is JSON-native (strings, numbers, booleans, null; times in ISO 8601), and a
    non-finite value or bound becomes null, since JSON has no infinity. The caller adds the
    delivery time and sends ``idempotency_key`` alongside.
    """
    _transition(transition)
    return {
        "event": f"alert.{transition}",
        "deployment": deployment,
        "environment": environment,
        "rule": rule,
        "severity": severity,
        "status": "firing" if transition == "fired" else "ok",
        "value": _json_number(verdict.value),
        "bound": _json_number(verdict.bound),
        "breached": verdict.breached,
        "detail": verdict.detail,
        "window_start": window_start.isoformat(),
        "window_end": window_end.isoformat(),
    }


def _transition(value: str) -> None:
    if value not in TRANSITIONS:
        raise errors.InvalidInput(f"must be 'fired' or 'resolved', got {value!r}",
                                  field="transition")


def _json_number(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
