"""The planner: desired specs + observed runtime + governance + history -> a Plan (pure).

``align`` pairs what Git declares with what the runtime runs, ``diff`` lists the differences
after normalising away what the runtime manages (endpoints, restarts), ``assess`` decides per
deployment what must happen (governance first, then health, canary, Git changes, drift), and
``plan`` orders the actions. Nothing here performs I/O or mutates its inputs: the same input
gives the same Plan, which is what ``threadline sync --dry-run`` prints and what the executor
applies. ``advance`` is the bookkeeping that follows an applied action.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from threadline.gitops import analysis, spec
from threadline.gitops.model import Key, Observed, Revision, ServingSample, Workload, config_hash, key_text
from threadline.gitops.state import CanaryProgress, DeploymentState, Verification, bad_mark


class Kind(str, enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    SCALE = "scale"
    HEAL = "heal"
    CANARY_START = "canary-start"
    CANARY_STEP = "canary-step"
    PROMOTE = "promote"
    ABORT = "abort"
    ROLLBACK = "rollback"
    DELETE = "delete"
    CHECK = "check"        # a health check or canary analysis ran; nothing to apply
    VERIFIED = "verified"  # the health window passed: this workload is the new rollback target
    BLOCKED = "blocked"
    NOOP = "noop"


APPLYING = frozenset({Kind.CREATE, Kind.UPDATE, Kind.SCALE, Kind.HEAL, Kind.CANARY_START, Kind.CANARY_STEP,
                      Kind.PROMOTE, Kind.ABORT, Kind.ROLLBACK})


class Status(str, enum.Enum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    BLOCKED = "Blocked"


@dataclass(frozen=True)
class Desired:
    """One declared deployment with what the agent learned about it before planning."""

    deployment: spec.ModelDeployment
    revision: Revision | None          # the version (or alias) pinned to its digest
    problem: str | None = None         # why it could not be resolved (missing model, version, alias)
    gate_failures: tuple[str, ...] = ()  # governance: every failing gate with its reason


@dataclass(frozen=True)
class PassInput:
    commit: str
    desired: Mapping[Key, Desired]
    observed: Mapping[Key, Observed]
    states: Mapping[Key, DeploymentState]
    now: datetime
    samples: Mapping[Key, ServingSample] = field(default_factory=dict)  # for the keys in ``needs_sample``
    load_errors: tuple[str, ...] = ()   # documents that did not load: never prune while there are any


@dataclass(frozen=True)
class Action:
    kind: Kind
    key: Key
    status: Status
    reason: str
    workload: Workload | None = None     # what the runtime is asked to run (applying kinds)
    evidence: Mapping[str, Any] = field(default_factory=dict)  # the values behind the decision
    differences: tuple[str, ...] = ()

    def describe(self) -> str:
        what = f" -> {describe_workload(self.workload)}" if self.workload else ""
        return f"{self.kind.value:<12} {key_text(self.key)}{what}: {self.reason}"


@dataclass(frozen=True)
class Plan:
    commit: str
    actions: tuple[Action, ...]

    def changes(self) -> list[Action]:
        return [a for a in self.actions if a.kind in APPLYING or a.kind is Kind.DELETE]


def describe_workload(workload: Workload) -> str:
    split = " + ".join(f"{r.ref} {w}%" for r, w in workload.weights())
    return f"{split} x{workload.replicas}"


def target(desired: Desired) -> Workload:
    """The workload Git asks for once every rollout step is done."""
    assert desired.revision is not None
    return workload_of(desired.deployment, desired.revision)


def workload_of(deployment: spec.ModelDeployment, revision: Revision) -> Workload:
    """What a deployment's spec asks a runtime to run, with ``revision`` as the stable version."""
    body = deployment.spec
    return Workload(key=deployment.key, stable=revision, replicas=body.replicas.min, serving=body.serving,
                    escalate_below=body.escalation.confidence_below if body.escalation else None,
                    escalate_rules=tuple(body.escalation.rules) if body.escalation else (),
                    config_hash=config_hash(body), replicas_max=body.replicas.max)


# -- align and diff ---------------------------------------------------------------------------

def align(inp: PassInput) -> list[tuple[Key, Desired | None, Observed | None, DeploymentState]]:
    keys = sorted(set(inp.desired) | set(inp.observed) | {k for k, s in inp.states.items() if s.applied})
    return [(k, inp.desired.get(k), inp.observed.get(k), inp.states.get(k, DeploymentState())) for k in keys]


def diff(expected: Workload, observed: Observed | None) -> tuple[str, ...]:
    """What differs between the workload that should run and what runs, in words.

    Endpoints, ports and restart counts are the runtime's business and never differ.
    """
    if observed is None:
        return ("not running",)
    found = []
    if observed.stable != expected.stable:
        found.append(f"stable {_ref(observed.stable)} instead of {expected.stable.ref}")
    if observed.canary != expected.canary or (expected.canary and observed.canary_weight != expected.canary_weight):
        found.append(f"canary {_ref(observed.canary)} at {observed.canary_weight}% instead of "
                     f"{_ref(expected.canary)} at {expected.canary_weight}%")
    if not expected.replicas <= observed.replicas <= expected.most_replicas:  # within the autoscaler's bounds
        found.append(f"replicas {observed.replicas} instead of {_bounds(expected)}")
    if observed.ready < observed.replicas:
        found.append(f"{observed.replicas - observed.ready} of {observed.replicas} replicas not ready")
    if expected.config_hash and observed.config_hash != expected.config_hash:
        found.append("serving settings differ")
    return tuple(found)


def _ref(revision: Revision | None) -> str:
    return "none" if revision is None else revision.ref


# -- sampling ---------------------------------------------------------------------------------

def needs_sample(inp: PassInput) -> list[Key]:
    """The deployments whose health check or canary analysis is due: the agent samples these
    (and only these) before planning."""
    due = []
    for key, desired, _, state in align(inp):
        if desired is None:
            continue
        health = desired.deployment.spec.health
        verifying, canary = state.verifying, state.canary
        if verifying and (inp.now - (verifying.last_check or verifying.since)).total_seconds() >= health.period:
            due.append(key)
        elif canary and (inp.now - canary.since).total_seconds() >= _pause(desired, canary.step):
            due.append(key)
    return due


def _pause(desired: Desired, step: int) -> float:
    steps = desired.deployment.spec.rollout.steps
    return float(steps[min(step, len(steps) - 1)].pause) if steps else 0.0


# -- assess -----------------------------------------------------------------------------------

def assess(inp: PassInput, key: Key, desired: Desired | None, observed: Observed | None,
           state: DeploymentState) -> Action:
    if desired is None:
        return _orphan(inp, key, observed, state)
    if desired.problem or desired.revision is None:
        return Action(Kind.BLOCKED, key, Status.BLOCKED, desired.problem or "the version could not be resolved")
    if desired.gate_failures:
        return Action(Kind.BLOCKED, key, Status.BLOCKED,
                      f"{desired.revision.ref} fails the governance gates of {key[1]}",
                      evidence={"gates": list(desired.gate_failures)})
    wanted = target(desired)
    sample = inp.samples.get(key)
    if state.verifying is not None and state.applied is not None:
        checked = _health(inp, key, desired, observed, state, sample)
        if checked is not None:
            return checked
    if state.canary is not None and state.canary.target == wanted.stable:
        return _canary_step(inp, key, desired, state, sample)
    mark = bad_mark(inp.commit, wanted)
    if state.applied != wanted and mark in state.bad:
        return Action(Kind.BLOCKED, key, Status.DEGRADED,
                      f"{wanted.stable.ref} failed its health checks at commit {inp.commit[:12]}; "
                      "not retried until Git changes", workload=None)
    if _git_changed(state, wanted):
        return _rollout(key, desired, observed, state, wanted)
    expected = state.applied or wanted
    differences = diff(expected, observed)
    if not differences:
        status = Status.PROGRESSING if state.verifying else Status.SYNCED
        return Action(Kind.NOOP, key, status, "in sync" if status is Status.SYNCED else "health checks running")
    if desired.deployment.spec.self_heal:
        only_replicas = observed is not None and differences == (
            f"replicas {observed.replicas} instead of {_bounds(expected)}",)
        kind = Kind.SCALE if only_replicas else Kind.HEAL
        return Action(kind, key, Status.PROGRESSING, "restoring what Git declares (selfHeal)", workload=expected,
                      differences=differences)
    return Action(Kind.NOOP, key, Status.OUT_OF_SYNC, "differs from Git; selfHeal is off",
                  differences=differences)


def _bounds(workload: Workload) -> str:
    """``2``, or ``1-4`` for a workload an autoscaler may scale."""
    most = workload.most_replicas
    return str(workload.replicas) if most == workload.replicas else f"{workload.replicas}-{most}"


def _git_changed(state: DeploymentState, wanted: Workload) -> bool:
    """Git asks for something other than what was last applied (ignoring a canary in flight)."""
    applied = state.applied
    if applied is None:
        return True
    settled = dataclasses.replace(applied, canary=None, canary_weight=0)
    return settled != wanted


def _rollout(key: Key, desired: Desired, observed: Observed | None, state: DeploymentState,
             wanted: Workload) -> Action:
    body = desired.deployment.spec
    running = state.applied
    if running is None or observed is None or observed.stable is None:
        return Action(Kind.CREATE, key, Status.PROGRESSING, f"deploy {wanted.stable.ref}", workload=wanted)
    if body.rollout.strategy == "canary" and running.stable != wanted.stable:
        first = body.rollout.steps[0].weight
        canary = dataclasses.replace(wanted, stable=running.stable, canary=wanted.stable, canary_weight=first)
        return Action(Kind.CANARY_START, key, Status.PROGRESSING,
                      f"canary {wanted.stable.ref} at {first}% beside {running.stable.ref}", workload=canary)
    if running.stable == wanted.stable and dataclasses.replace(
            running, replicas=wanted.replicas, replicas_max=wanted.replicas_max, canary=None,
            canary_weight=0) == wanted:
        return Action(Kind.SCALE, key, Status.PROGRESSING, f"replicas {_bounds(running)} -> {_bounds(wanted)}",
                      workload=wanted)
    return Action(Kind.UPDATE, key, Status.PROGRESSING, f"{running.stable.ref} -> {wanted.stable.ref}",
                  workload=wanted)


def _health(inp: PassInput, key: Key, desired: Desired, observed: Observed | None, state: DeploymentState,
            sample: ServingSample | None) -> Action | None:
    """A due health check of the applied workload: pass, fail (rollback at the threshold), or
    the window ends and the workload becomes the rollback target."""
    verifying, applied = state.verifying, state.applied
    assert verifying is not None and applied is not None
    health = desired.deployment.spec.health
    if sample is None:
        return None  # not due this pass
    served = applied.canary or applied.stable
    verdict = analysis.judge(analysis.window(verifying.baseline, sample, served.ref),
                             max_error_rate=health.max_error_rate, max_p99_ms=health.max_p99_latency_ms,
                             what=f"health of {served.ref}")
    if observed is None or observed.ready < observed.replicas:
        ready = 0 if observed is None else observed.ready
        verdict = analysis.Verdict(analysis.Outcome.FAIL, f"health of {served.ref}: {ready} of "
                                   f"{applied.replicas} replicas ready", {**verdict.values, "ready": ready})
    evidence = {"verdict": verdict.outcome.value, "values": verdict.values, "check": verifying.failures + 1}
    if verdict.outcome is analysis.Outcome.FAIL:
        failures = verifying.failures + 1
        if failures < health.failure_threshold:
            return Action(Kind.CHECK, key, Status.PROGRESSING,
                          f"{verdict.reason} (failed check {failures} of {health.failure_threshold})",
                          evidence=evidence)
        if state.healthy is None or state.healthy == applied:
            return Action(Kind.BLOCKED, key, Status.DEGRADED,
                          f"{verdict.reason}; no earlier healthy revision to roll back to", evidence=evidence)
        return Action(Kind.ROLLBACK, key, Status.DEGRADED,
                      f"{verdict.reason}; rolling back to {state.healthy.stable.ref}", workload=state.healthy,
                      evidence=evidence)
    if (inp.now - verifying.since).total_seconds() >= health.window:
        return Action(Kind.VERIFIED, key, Status.SYNCED, f"{served.ref} passed its health checks "
                      f"({verdict.reason})", evidence=evidence)
    return Action(Kind.CHECK, key, Status.PROGRESSING, verdict.reason, evidence=evidence)


def _canary_step(inp: PassInput, key: Key, desired: Desired, state: DeploymentState,
                 sample: ServingSample | None) -> Action:
    canary, applied = state.canary, state.applied
    assert canary is not None and applied is not None
    rollout = desired.deployment.spec.rollout
    weight = rollout.steps[canary.step].weight
    if sample is None:
        wait = _pause(desired, canary.step) - (inp.now - canary.since).total_seconds()
        return Action(Kind.NOOP, key, Status.PROGRESSING,
                      f"canary {canary.target.ref} at {weight}%, analysis in {max(wait, 0):.0f}s")
    verdict = analysis.compare(analysis.window(canary.baseline, sample, applied.stable.ref),
                               analysis.window(canary.baseline, sample, canary.target.ref),
                               max_error_rate=rollout.analysis.max_error_rate,
                               max_p99_ms=rollout.analysis.max_p99_latency_ms)
    evidence = {"step": canary.step + 1, "weight": weight, "verdict": verdict.outcome.value, "values": verdict.values}
    if verdict.outcome is analysis.Outcome.FAIL:
        stable_only = dataclasses.replace(applied, canary=None, canary_weight=0)
        return Action(Kind.ABORT, key, Status.DEGRADED, f"{verdict.reason}; back to {applied.stable.ref}",
                      workload=stable_only, evidence=evidence)
    if verdict.outcome is analysis.Outcome.INCONCLUSIVE:
        return Action(Kind.CHECK, key, Status.PROGRESSING, f"paused at {weight}%: {verdict.reason}",
                      evidence=evidence)
    if canary.step + 1 < len(rollout.steps):
        following = rollout.steps[canary.step + 1].weight
        return Action(Kind.CANARY_STEP, key, Status.PROGRESSING, f"{verdict.reason}; canary to {following}%",
                      workload=dataclasses.replace(applied, canary_weight=following), evidence=evidence)
    return Action(Kind.PROMOTE, key, Status.PROGRESSING, f"{verdict.reason}; promoting {canary.target.ref}",
                  workload=target(desired), evidence=evidence)


def _orphan(inp: PassInput, key: Key, observed: Observed | None, state: DeploymentState) -> Action:
    if observed is None:
        return Action(Kind.NOOP, key, Status.SYNCED, "removed from Git and not running")
    if inp.load_errors:
        return Action(Kind.NOOP, key, Status.OUT_OF_SYNC,
                      "not in Git, but some documents did not load: not pruning while errors are reported")
    if state.prune:
        return Action(Kind.DELETE, key, Status.SYNCED, "removed from Git (prune)")
    return Action(Kind.NOOP, key, Status.OUT_OF_SYNC, "removed from Git; prune is off, so it keeps running")


# -- plan and advance -------------------------------------------------------------------------

def plan(inp: PassInput) -> Plan:
    return Plan(inp.commit, tuple(assess(inp, key, d, o, s) for key, d, o, s in align(inp)))


def advance(state: DeploymentState, action: Action, *, commit: str, now: datetime, desired: Desired | None,
            sample: ServingSample | None, failed: bool = False) -> DeploymentState:
    """The state after ``action`` was carried out (``failed``: the runtime refused it)."""
    prune = desired.deployment.spec.prune if desired else state.prune
    state = dataclasses.replace(state, prune=prune)
    baseline = sample or ServingSample()
    kind = action.kind
    if failed and action.workload is not None:
        mark = bad_mark(commit, settled(action.workload))
        return dataclasses.replace(state, bad=(*state.bad, mark)[-20:], verifying=None, canary=None)
    if kind is Kind.DELETE:
        return DeploymentState()
    if kind is Kind.CHECK and state.verifying is not None and action.evidence.get("verdict") is not None:
        failures = state.verifying.failures + (1 if action.evidence["verdict"] == "fail" else 0)
        return dataclasses.replace(state, verifying=dataclasses.replace(state.verifying, failures=failures,
                                                                        last_check=now))
    if kind is Kind.VERIFIED:
        return dataclasses.replace(state, healthy=state.applied, verifying=None)
    if kind in (Kind.ROLLBACK, Kind.ABORT):
        assert action.workload is not None and state.applied is not None
        bad = (*state.bad, bad_mark(commit, _failed_target(state)))[-20:]
        healthy = action.workload if kind is Kind.ROLLBACK else state.healthy
        return dataclasses.replace(state, applied=action.workload, healthy=healthy, bad=bad, verifying=None,
                                   canary=None)
    if kind is Kind.CANARY_START:
        assert action.workload is not None and action.workload.canary is not None
        return dataclasses.replace(state, applied=action.workload, verifying=None,
                                   canary=CanaryProgress(action.workload.canary, 0, now, baseline))
    if kind is Kind.CANARY_STEP and state.canary is not None:
        return dataclasses.replace(state, applied=action.workload,
                                   canary=dataclasses.replace(state.canary, step=state.canary.step + 1, since=now,
                                                              baseline=baseline))
    if kind in (Kind.CREATE, Kind.UPDATE, Kind.PROMOTE):
        return dataclasses.replace(state, applied=action.workload, canary=None,
                                   verifying=Verification(since=now, baseline=baseline))
    if kind in (Kind.SCALE, Kind.HEAL):
        return dataclasses.replace(state, applied=action.workload)
    return state


def _failed_target(state: DeploymentState) -> Workload:
    """The workload that failed: the canary's target during a canary, else what was applied."""
    assert state.applied is not None
    return settled(state.applied)


def settled(workload: Workload) -> Workload:
    """The workload once a rollout is done: a canary's revision takes all the traffic."""
    if workload.canary is None:
        return workload
    return dataclasses.replace(workload, stable=workload.canary, canary=None, canary_weight=0)
