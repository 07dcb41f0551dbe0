"""What the agent remembers about each deployment between passes (pure values + JSON codec).

``applied`` is the last workload the agent asked the runtime to run, ``healthy`` the last one
that passed its health checks (the rollback target), ``bad`` the revisions that failed and are
not retried until Git changes, and ``verifying``/``canary`` the checks in progress with the
metric samples they started from. It is stored in the metadata database, so a restarted
agent continues a canary or a health check where the last one stopped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from threadline.gitops import spec as deployment_spec
from threadline.gitops.model import Key, Revision, RevisionSample, ServingSample, Workload


@dataclass(frozen=True)
class Verification:
    """Health checks of an applied workload: ``failures`` consecutive failed checks so far."""

    since: datetime
    baseline: ServingSample
    failures: int = 0
    last_check: datetime | None = None


@dataclass(frozen=True)
class CanaryProgress:
    target: Revision
    step: int            # index into spec.rollout.steps
    since: datetime      # when this step's weight was applied
    baseline: ServingSample


@dataclass(frozen=True)
class DeploymentState:
    applied: Workload | None = None
    healthy: Workload | None = None
    bad: tuple[str, ...] = ()
    verifying: Verification | None = None
    canary: CanaryProgress | None = None
    prune: bool = False


def bad_mark(commit: str, workload: Workload) -> str:
    """A failed revision is refused again until the commit (Git) changes."""
    return f"{commit}:{workload.stable.digest}:{workload.canary.digest if workload.canary else ''}"


# -- JSON ---------------------------------------------------------------------------------

def _revision(data: dict[str, Any] | None) -> Revision | None:
    return None if data is None else Revision(data["model"], int(data["version"]), data["digest"])


def _sample(data: dict[str, Any]) -> ServingSample:
    return ServingSample({ref: RevisionSample(int(v["requests"]), int(v["errors"]), v["p99_ms"])
                          for ref, v in data.items()})


def _sample_json(sample: ServingSample) -> dict[str, Any]:
    return {ref: dataclasses.asdict(v) for ref, v in sample.by_revision.items()}


def workload_json(workload: Workload | None) -> dict[str, Any] | None:
    if workload is None:
        return None
    return {"key": list(workload.key), "stable": dataclasses.asdict(workload.stable), "replicas": workload.replicas,
            "serving": workload.serving.model_dump(mode="json", by_alias=True),
            "escalate_below": workload.escalate_below, "escalate_rules": list(workload.escalate_rules),
            "canary": None if workload.canary is None else dataclasses.asdict(workload.canary),
            "canary_weight": workload.canary_weight, "config_hash": workload.config_hash,
            "replicas_max": workload.replicas_max}


def workload_from_json(data: dict[str, Any] | None) -> Workload | None:
    if data is None:
        return None
    stable = _revision(data["stable"])
    assert stable is not None
    return Workload(key=(data["key"][0], data["key"][1]), stable=stable, replicas=int(data["replicas"]),
                    serving=deployment_spec.Serving.model_validate(data["serving"]),
                    escalate_below=data["escalate_below"], escalate_rules=tuple(data.get("escalate_rules", ())),
                    canary=_revision(data["canary"]),
                    canary_weight=int(data["canary_weight"]), config_hash=data["config_hash"],
                    replicas_max=int(data.get("replicas_max", 0)))


def to_json(state: DeploymentState) -> dict[str, Any]:
    verifying = state.verifying
    canary = state.canary
    return {
        "applied": workload_json(state.applied), "healthy": workload_json(state.healthy), "bad": list(state.bad),
        "verifying": None if verifying is None else {
            "since": verifying.since.isoformat(), "baseline": _sample_json(verifying.baseline),
            "failures": verifying.failures,
            "last_check": None if verifying.last_check is None else verifying.last_check.isoformat()},
        "canary": None if canary is None else {
            "target": dataclasses.asdict(canary.target), "step": canary.step, "since": canary.since.isoformat(),
            "baseline": _sample_json(canary.baseline)},
        "prune": state.prune,
    }


def from_json(data: dict[str, Any]) -> DeploymentState:
    verifying, canary = data.get("verifying"), data.get("canary")
    target = _revision(canary["target"]) if canary else None
    return DeploymentState(
        applied=workload_from_json(data.get("applied")), healthy=workload_from_json(data.get("healthy")),
        bad=tuple(data.get("bad") or ()),
        verifying=None if verifying is None else Verification(
            since=datetime.fromisoformat(verifying["since"]), baseline=_sample(verifying["baseline"]),
            failures=int(verifying["failures"]),
            last_check=None if verifying["last_check"] is None else datetime.fromisoformat(verifying["last_check"])),
        canary=None if canary is None or target is None else CanaryProgress(
            target=target, step=int(canary["step"]), since=datetime.fromisoformat(canary["since"]),
            baseline=_sample(canary["baseline"])),
        prune=bool(data.get("prune")))


States = dict[Key, DeploymentState]
