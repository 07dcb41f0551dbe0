"""Replay comparison is exact and says where it first differs; ``decide`` sums up a candidate."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from threadline.bundles import replay

RECORDED: list[dict[str, Any]] = [
    {"step": "scale", "kind": "transform", "output": [0.5, float("nan"), -1.25]},
    {"step": "vote.lr", "kind": "member", "output": {"probabilities": [0.75, 0.25]}},
    {"step": "vote", "kind": "predict", "output": {"probabilities": [0.75, 0.25], "label": "ham"}},
]


def _replayed(edit: Any = None) -> list[dict[str, Any]]:
    steps = copy.deepcopy(RECORDED)
    if edit:
        edit(steps)
    return steps


def test_identical_chains_match() -> None:
    report = replay.compare(RECORDED, _replayed())
    assert report.matches
    assert [(s.step, s.kind, s.matches, s.detail) for s in report.steps] == [
        ("scale", "transform", True, ""),
        ("vote.lr", "member", True, ""),
        ("vote", "predict", True, "")]
    assert report.summary == "all 3 steps match"


def test_nan_matches_nan_and_the_null_a_bundle_stores() -> None:
    stored = _replayed(lambda s: s[0].update(output=[0.5, None, -1.25]))
    assert replay.compare(stored, _replayed()).matches
    assert replay.compare(_replayed(), stored).matches


def test_a_tiny_float_change_is_found_with_its_path() -> None:
    def nudge(steps: list[dict[str, Any]]) -> None:
        steps[2]["output"]["probabilities"][1] = 0.2500001

    report = replay.compare(RECORDED, _replayed(nudge))
    assert not report.matches
    assert report.steps[2] == replay.StepMatch(
        "vote", "predict", False, "output.probabilities[1]: recorded 0.25, replayed 0.2500001")
    assert [s.matches for s in report.steps] == [True, True, False]
    assert report.summary.startswith(
        "1 of 3 steps differ; first: vote (predict): output.probabilities[1]")


@pytest.mark.parametrize(("edit", "detail"), [
    (lambda s: s[2]["output"].update(label=1), 'output.label: recorded "ham", replayed 1'),
    (lambda s: s[0].update(output=[0.5, None, -1.25, 3.0]),
     "output: recorded 3 values, replayed 4"),
    (lambda s: s[2]["output"].pop("label"), "output.label: missing in the replay"),
    (lambda s: s[2]["output"].update(extra=True), "output.extra: not recorded"),
])
def test_differences_are_named(edit: Any, detail: str) -> None:
    report = replay.compare(RECORDED, _replayed(edit))
    assert not report.matches
    assert detail in [s.detail for s in report.steps]


def test_types_count() -> None:
    ones = [{"step": "m", "kind": "predict", "output": {"label": 1}}]
    floats = [{"step": "m", "kind": "predict", "output": {"label": 1.0}}]
    booleans = [{"step": "m", "kind": "predict", "output": {"label": True}}]
    assert not replay.compare(ones, floats).matches
    assert not replay.compare(ones, booleans).matches


def test_missing_and_unrecorded_steps_are_reported() -> None:
    missing = replay.compare(RECORDED, _replayed(lambda s: s.pop(1)))
    assert not missing.matches
    assert missing.steps[1] == replay.StepMatch("vote.lr", "member", False, "missing in the replay")

    extra = replay.compare(RECORDED[:2], _replayed())
    assert not extra.matches
    assert extra.steps[-1] == replay.StepMatch("vote", "predict", False,
                                               "not in the recorded chain")


def test_same_steps_in_another_order_do_not_match() -> None:
    report = replay.compare(RECORDED, _replayed(lambda s: s.reverse()))
    assert all(s.matches for s in report.steps)
    assert not report.matches
    assert "different order" in report.summary


def test_decide_summarises_a_candidate() -> None:
    recorded = {"label": "ham", "probabilities": [0.75, 0.25]}
    assert replay.decide(recorded, {"label": "spam", "probabilities": [0.25, 0.75]}) == \
        'label changed: "ham" -> "spam"; probabilities: largest change -0.5 at [0]'
    assert replay.decide(recorded, dict(recorded)) == \
        'label unchanged ("ham"); probabilities unchanged'
    assert replay.decide({"prediction": 1.5}, {"prediction": 2.0}) == "prediction 1.5 -> 2.0 (+0.5)"
    assert replay.decide({"prediction": 1.5}, {"score": 2.0}) == \
        "prediction: only in the recorded outputs; score: only in the candidate's outputs"
