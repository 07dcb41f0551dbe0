"""Did a replay decide exactly as recorded, and how would another version have decided?

Replaying a bundle loads the version it names, runs the recorded inputs through it again and
hands both decision chains to ``compare``. Equality is exact (floats with ``==``): the point
of a replay is to show that the recorded decision is the one this model makes, and a model
that drifts by 1e-7 on the same bytes has changed (another library version, another build).

Both sides are compared as a bundle stores them, i.e. after a JSON round trip: a NaN is stored
as null (JSON has no NaN), so a recorded null equals a replayed NaN, and NaN equals NaN.
Types count: ``1`` and ``1.0`` and ``true`` are three different labels.

``decide`` answers the reviewer's other question: what a candidate version would have said on
the same row, in one line. Everything here is pure.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

_SHOWN = 60  # characters of a value shown in a detail


@dataclass(frozen=True)
class StepMatch:
    step: str
    kind: str
    matches: bool
    detail: str  # empty when it matches, else the first difference or what is missing


@dataclass(frozen=True)
class ReplayReport:
    steps: list[StepMatch]
    matches: bool  # every step matches, and the two chains have the same steps in the same order
    summary: str


def compare(recorded: Sequence[Mapping[str, Any]], replayed: Sequence[Mapping[str, Any]]
            ) -> ReplayReport:
    """Each recorded step against the replayed step of the same name and kind, then the
    replayed steps that were never recorded."""
    ours, theirs = _stored(recorded), _stored(replayed)
    ours_keys, theirs_keys = _keys(ours), _keys(theirs)
    by_key = dict(zip(theirs_keys, theirs))
    steps = [_match(step, by_key.get(key)) for key, step in zip(ours_keys, ours)]
    recorded_keys = set(ours_keys)
    steps += [StepMatch(step["step"], step["kind"], False, "not in the recorded chain")
              for key, step in zip(theirs_keys, theirs) if key not in recorded_keys]
    differing = [step for step in steps if not step.matches]
    in_order = ours_keys == theirs_keys
    if differing:
        first = differing[0]
        summary = (f"{len(differing)} of {len(steps)} steps differ; first: {first.step} "
                   f"({first.kind}): {first.detail}")
    elif not in_order:
        summary = "every step matches, but the steps ran in a different order"
    else:
        summary = f"all {len(steps)} steps match"
    return ReplayReport(steps, not differing and in_order, summary)


def decide(recorded_outputs: Mapping[str, Any], candidate_outputs: Mapping[str, Any]) -> str:
    """One line on how the candidate's outputs for a row differ from the recorded ones, e.g.
    ``label changed: "ham" -> "spam"; probabilities: largest change +0.31 at [1]``."""
    ours, theirs = _stored(recorded_outputs), _stored(candidate_outputs)
    parts = [_decided(name, ours[name], theirs[name]) if name in theirs
             else f"{name}: only in the recorded outputs" for name in ours]
    parts += [f"{name}: only in the candidate's outputs" for name in theirs if name not in ours]
    return "; ".join(parts)


def _stored(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value))


def _keys(steps: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(name, kind, occurrence): names are unique in a chain, but a replay must not assume it."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for step in steps:
        pair = (step["step"], step["kind"])
        seen[pair] = seen.get(pair, -1) + 1
        keys.append((*pair, seen[pair]))
    return keys


def _match(recorded: dict[str, Any], replayed: dict[str, Any] | None) -> StepMatch:
    if replayed is None:
        return StepMatch(recorded["step"], recorded["kind"], False, "missing in the replay")
    detail = _difference(recorded, replayed, "")
    return StepMatch(recorded["step"], recorded["kind"], detail is None, detail or "")


def _difference(ours: Any, theirs: Any, path: str) -> str | None:
    """The first path where two JSON values differ, with both sides; None when equal."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(ours.keys() | theirs.keys()):
            where = f"{path}.{key}" if path else key
            if key not in theirs:
                return f"{where}: missing in the replay"
            if key not in ours:
                return f"{where}: not recorded"
            found = _difference(ours[key], theirs[key], where)
            if found:
                return found
        return None
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return f"{path}: recorded {len(ours)} values, replayed {len(theirs)}"
        return next(filter(None, (_difference(a, b, f"{path}[{index}]")
                                  for index, (a, b) in enumerate(zip(ours, theirs)))), None)
    if type(ours) is type(theirs) and ours == theirs:
        return None
    return f"{path}: recorded {_show(ours)}, replayed {_show(theirs)}"


def _decided(name: str, ours: Any, theirs: Any) -> str:
    if _is_number(ours) and _is_number(theirs):
        return f"{name} unchanged ({_show(ours)})" if ours == theirs \
            else f"{name} {_show(ours)} -> {_show(theirs)} ({theirs - ours:+.4g})"
    if (isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs)
            and all(map(_is_number, ours + theirs))):
        deltas = [b - a for a, b in zip(ours, theirs)]
        index = max(range(len(deltas)), key=lambda i: abs(deltas[i]), default=None)
        if index is None or deltas[index] == 0:
            return f"{name} unchanged"
        return f"{name}: largest change {deltas[index]:+.4g} at [{index}]"
    if _difference(ours, theirs, name) is None:
        return f"{name} unchanged ({_show(ours)})"
    return f"{name} changed: {_show(ours)} -> {_show(theirs)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."
