"""How many replicas to run now: the local runtime's autoscaler, as one pure decision.

It follows the Kubernetes HorizontalPodAutoscaler, so a deployment behaves the same on a
laptop and on a cluster (where the rendered HPA does this job):

- desired = ceil(load / target per replica), clamped to [minimum, maximum], where load is the
  concurrency (or queue depth) summed over replicas;
- scale up at once: a queue that waits costs latency now;
- scale down only as far as the highest replica count the load asked for during the
  stabilization window (the HPA's scale-down stabilization), so a dip in traffic does not
  stop replicas that the next burst needs again (no flapping);
- while requests arrive, at least one replica runs even when ``minimum`` is 0; only after
  ``idle_after`` with no request and nothing in flight does it go to ``minimum`` (to zero if
  the spec allows it).

The caller owns the clock and the history: it passes ``now``, the recent observations and the
earlier decisions' ``wanted`` values, and appends ``Proposal(now, decision.wanted)`` to the
history after each call. Observations should reach back at least ``idle_after``: idleness is
measured from the last interval with requests, or from the first observation when none had
any. Every decision says why, in words a person reads in the event log.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from threadline.domain import errors

STABILIZATION = timedelta(seconds=60)
IDLE_AFTER = timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Observation:
    """The load at ``time``, summed over replicas, and the requests of the interval ending then."""

    time: datetime
    load: float       # concurrency or queue depth
    requests: int


@dataclasses.dataclass(frozen=True)
class Proposal:
    """What the load alone asked for at ``time`` (a past ``Decision.wanted``)."""

    time: datetime
    desired: int


@dataclasses.dataclass(frozen=True)
class Decision:
    """The replicas to run and why. ``wanted`` is the load's own answer before stabilization:
    the value to remember in the history (remembering ``desired`` would hold a peak forever)."""

    desired: int
    reason: str
    wanted: int


def decide(current: int, minimum: int, maximum: int, observations: Sequence[Observation],
           target_per_replica: float, now: datetime, *, stabilization: timedelta = STABILIZATION,
           idle_after: timedelta = IDLE_AFTER, history: Sequence[Proposal] = ()) -> Decision:
    """The replica count for ``now``; observations and history after ``now`` are ignored."""
    _check(current, minimum, maximum, target_per_replica)
    seen = sorted((o for o in observations if o.time <= now), key=lambda o: o.time)
    if not seen:
        held = min(max(current, minimum), maximum)
        return Decision(held, f"no observations yet: holding {_replicas(held)}", held)

    quiet = _quiet_for(seen, now)
    if seen[-1].load == 0 and quiet >= idle_after:
        return Decision(minimum, f"idle for {_duration(quiet)}: scale to minimum {minimum}", minimum)

    load = seen[-1].load
    if current == 0 and minimum == 0 and load == 0 and seen[-1].requests == 0:
        return Decision(0, "no traffic: staying at 0", 0)  # waking up needs a request, not a clock
    floor = max(minimum, 1)  # a replica serves while requests arrive, whatever the minimum
    raw = math.ceil(load / target_per_replica - 1e-9)  # 1e-9: 0.6 / 0.2 is 2.9999999999999996
    wanted = min(max(raw, floor), maximum)
    because = f"load {load:g} over target {target_per_replica:g} per replica: {_replicas(raw)}"
    if raw > maximum:
        because += f", capped at maximum {maximum}"
    elif raw < floor:
        because += f", raised to minimum {minimum}" if minimum >= 1 else ", kept at 1 until idle"
    if wanted >= current:
        return Decision(wanted, because, wanted)

    recent = [p.desired for p in history if now - stabilization < p.time <= now]
    highest = max([wanted, *recent])
    desired = min(current, highest, maximum)
    window = f"the last {stabilization.total_seconds():g} s wanted up to {highest}"
    if desired == current:
        return Decision(desired, f"holding {current}: {window}; now {because}", wanted)
    if desired > wanted:
        return Decision(desired, f"{because}; but {window}: {_replicas(desired)}", wanted)
    return Decision(desired, because, wanted)


def _check(current: int, minimum: int, maximum: int, target: float) -> None:
    if not 0 <= minimum <= maximum or maximum < 1:
        raise errors.InvalidInput(f"replica bounds must satisfy 0 <= min <= max and max >= 1, "
                                  f"not min {minimum}, max {maximum}", field="replicas")
    if current < 0:
        raise errors.InvalidInput(f"must be zero or more, not {current}", field="current")
    if not (target > 0 and math.isfinite(target)):
        raise errors.InvalidInput(f"must be a positive number, not {target}", field="target_per_replica")


def _quiet_for(seen: Sequence[Observation], now: datetime) -> timedelta:
    """Time since the last interval with requests; since the first observation if none had any."""
    busy = [o.time for o in seen if o.requests > 0]
    return now - (busy[-1] if busy else seen[0].time)


def _replicas(count: int) -> str:
    return f"{count} replica" if count == 1 else f"{count} replicas"


def _duration(span: timedelta) -> str:
    """``5m``, ``7m30s``, ``45s``, ``1h2m``: a person's reading of how long it was idle."""
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"
