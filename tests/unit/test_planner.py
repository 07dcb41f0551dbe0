"""The planner against golden fixtures: desired specs and observed state in YAML -> the expected plan.

Each file in ``planner_cases/`` holds one or more cases. Deployments are written short (name,
version, and any spec fields); revisions ``m@v`` get the digest ``d-m-v``; every deployment is in
environment ``production``.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from threadline.gitops import planner, spec
from threadline.gitops.model import Key, Observed, Revision, RevisionSample, ServingSample, Workload
from threadline.gitops.state import CanaryProgress, DeploymentState, Verification, bad_mark

CASES = Path(__file__).with_name("planner_cases")
ENV = "production"
NOW = "2026-11-28T12:00:00Z"


def _cases() -> list[Any]:
    found = []
    for path in sorted(CASES.glob("*.yaml")):
        for case in yaml.safe_load_all(path.read_text()):
            found.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return found


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def _revision(ref: str | None) -> Revision | None:
    if ref is None:
        return None
    model, version = ref.split("@")
    return Revision(model, int(version), f"d-{model}-{version}")


def _deployment(item: dict[str, Any]) -> planner.Desired:
    fields = {k: v for k, v in item.items() if k not in ("name", "gates", "problem")}
    document = {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
                "metadata": {"name": item["name"], "environment": ENV, "owner": "team"},
                "spec": {"model": item["name"], **fields}}
    deployment = spec.ModelDeployment.model_validate(document, by_alias=True, by_name=False)
    revision = None if item.get("problem") else _revision(f"{item['name']}@{item['version']}")
    return planner.Desired(deployment, revision, item.get("problem"), tuple(item.get("gates", ())))


def _sample(data: dict[str, list[Any]]) -> ServingSample:
    return ServingSample({ref: RevisionSample(v[0], v[1], v[2] if len(v) > 2 else None) for ref, v in data.items()})


def _workload(key: Key, desired: planner.Desired | None, stable: str, canary: str | None, weight: int) -> Workload:
    base = planner.target(dataclasses.replace(desired, revision=_revision(stable))) if desired else Workload(
        key, _revision(stable), 1, spec.Serving())  # type: ignore[arg-type]
    return dataclasses.replace(base, canary=_revision(canary), canary_weight=weight)


def _input(case: dict[str, Any]) -> planner.PassInput:
    desired = {(d["name"], ENV): _deployment(d) for d in case.get("deployments", [])}
    states: dict[Key, DeploymentState] = {}
    for item in case.get("states", []):
        key = (item["name"], ENV)
        wanted = desired.get(key)
        applied = _workload(key, wanted, item["applied"], item.get("canary"), item.get("weight", 0))
        applied = dataclasses.replace(applied, replicas=item.get("replicas", applied.replicas))
        healthy = _workload(key, wanted, item["healthy"], None, 0) if item.get("healthy") else None
        baseline = _sample(item.get("baseline", {}))
        states[key] = DeploymentState(
            applied=applied, healthy=healthy, prune=item.get("prune", False),
            bad=tuple(bad_mark(b["commit"], _workload(key, wanted, b["stable"], None, 0)) for b in item.get("bad", [])),
            canary=CanaryProgress(_revision(item["canary"]), item["canary_step"], _time(item["since"]), baseline)
            if "canary_step" in item else None,  # type: ignore[arg-type]
            verifying=Verification(_time(item["verifying_since"]), baseline, item.get("failures", 0))
            if "verifying_since" in item else None)
    observed: dict[Key, Observed] = {}
    for item in case.get("observed", []):
        key = (item["name"], ENV)
        state = states.get(key)
        replicas = item.get("replicas", state.applied.replicas if state and state.applied else 1)
        wanted = desired.get(key)
        observed[key] = Observed(key, _revision(item["stable"]), _revision(item.get("canary")), item.get("weight", 0),
                                 replicas, item.get("ready", replicas),
                                 config_hash=planner.target(wanted).config_hash if wanted and wanted.revision else "",
                                 endpoints=("http://127.0.0.1:1",), restarts=3)
    return planner.PassInput(
        commit=case.get("commit", "c1"), desired=desired, observed=observed, states=states,
        now=_time(case.get("now", NOW)),
        samples={(name, ENV): _sample(data) for name, data in case.get("samples", {}).items()},
        load_errors=tuple(case.get("load_errors", ())))


def _actual(action: planner.Action, expected: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {"kind": action.kind.value, "key": f"{action.key[1]}/{action.key[0]}",
                             "status": action.status.value}
    if "reason" in expected:
        found["reason"] = action.reason
    if "workload" in expected:
        found["workload"] = planner.describe_workload(action.workload) if action.workload else None
    if "differences" in expected:
        found["differences"] = list(action.differences)
    if "evidence" in expected:
        found["evidence"] = {k: action.evidence.get(k) for k in expected["evidence"]}
    return found


@pytest.mark.parametrize("case", _cases())
def test_golden_plans(case: dict[str, Any]) -> None:
    inp = _input(case)
    frozen = copy.deepcopy(inp)
    plan = planner.plan(inp)
    assert [_actual(a, e) for a, e in zip(plan.actions, case["expect"])] == case["expect"]
    assert len(plan.actions) == len(case["expect"])
    assert inp == frozen, "the planner must not mutate its input"
    assert planner.plan(inp) == plan, "the same input must give the same plan"


def test_samples_are_asked_only_when_a_check_is_due() -> None:
    cases = {case.values[0]["name"]: case.values[0] for case in _cases()}
    assert planner.needs_sample(_input(cases["nothing changed is a no-op and needs no sample"])) == []
    assert planner.needs_sample(_input(cases["a canary step holds its weight until its pause is over"])) == []
    assert planner.needs_sample(_input(cases["a passing analysis moves the canary to the next step"])) == \
        [("iris", ENV)]
    assert planner.needs_sample(_input(cases["at the threshold the last healthy revision is restored"])) == \
        [("iris", ENV)]


def test_advance_after_a_rollback_marks_the_failed_revision_and_keeps_it_out() -> None:
    cases = {case.values[0]["name"]: case.values[0] for case in _cases()}
    inp = _input(cases["at the threshold the last healthy revision is restored"])
    action = planner.plan(inp).actions[0]
    key = ("iris", ENV)
    after = planner.advance(inp.states[key], action, commit=inp.commit, now=inp.now, desired=inp.desired[key],
                            sample=None)
    assert after.applied == action.workload and after.verifying is None
    rolled = Observed(key, after.applied.stable, None, 0, 1, 1, after.applied.config_hash)  # type: ignore[union-attr]
    again = planner.plan(dataclasses.replace(inp, states={key: after}, observed={key: rolled}, samples={}))
    assert again.actions[0].kind is planner.Kind.BLOCKED and "not retried until Git changes" in again.actions[0].reason
