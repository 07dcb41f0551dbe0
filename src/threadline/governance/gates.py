"""Evaluate a version against the policy's gates for one environment (pure, no I/O).

Every gate reports pass or fail with the reason and, when it fails, what would satisfy it,
so an API error, a CLI table and the deployment agent all say the same thing. Gates about
the deployment spec (monitoring, escalation) are ``deferred`` when no spec is given: a
version can be approved before anyone writes its deployment, and the agent checks them
again with the spec.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from threadline.domain import lifecycle, models
from threadline.gitops import spec as deployment_spec
from threadline.governance import cards
from threadline.governance.policy import Gates, MetricGate


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    DEFERRED = "deferred"


@dataclass(frozen=True)
class Gate:
    name: str
    outcome: Outcome
    reason: str

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASS


@dataclass(frozen=True)
class Report:
    model: str
    version: int
    environment: str
    risk_tier: str
    policy_version: int
    gates: tuple[Gate, ...]

    @property
    def passed(self) -> bool:
        """Nothing failed; deferred gates are checked again when a spec is given."""
        return all(gate.outcome is not Outcome.FAIL for gate in self.gates)

    def failures(self) -> list[Gate]:
        return [gate for gate in self.gates if gate.outcome is Outcome.FAIL]

    def summary(self) -> str:
        """One line per failed gate, for errors that refuse an action."""
        return "; ".join(f"{gate.name}: {gate.reason}" for gate in self.failures())


@dataclass(frozen=True)
class ApprovalState:
    """Where the approval workflow stands for one version in one environment."""

    requested: bool
    approvers: tuple[str, ...]       # current approvals of the open round, oldest first
    mfa_approvers: tuple[str, ...]   # those that came with a fresh TOTP code
    rejected_by: str | None


def approval_state(approvals: Sequence[models.Approval], environment: str) -> ApprovalState:
    """Replay the immutable records: a request opens a round, a rejection closes it, an approver
    may withdraw their approval; only approvals in the open round count."""
    requested, rejected_by = False, None
    current: dict[str, bool] = {}
    for record in approvals:
        if record.environment != environment:
            continue
        if record.decision is models.Decision.REQUEST:
            requested, rejected_by, current = True, None, {}
        elif record.decision is models.Decision.APPROVE and requested:
            current.setdefault(record.actor, record.mfa)
        elif record.decision is models.Decision.REJECT:
            requested, rejected_by, current = False, record.actor, {}
        elif record.decision is models.Decision.WITHDRAW:
            current.pop(record.actor, None)
    return ApprovalState(requested, tuple(current), tuple(a for a, mfa in current.items() if mfa), rejected_by)


def check(model: models.Model, version: models.ModelVersion, card: cards.ModelCard,
          approvals: Sequence[models.Approval], gates: Gates | None, environment: str, policy_version: int,
          spec: deployment_spec.DeploymentSpec | None = None) -> Report:
    """``gates`` is None for the unacceptable tier, which no policy can open."""
    if gates is None:
        refused = Gate("risk-tier", Outcome.FAIL, "risk tier unacceptable never deploys anywhere")
        return Report(model.name, version.version, environment, model.risk_tier.value, policy_version, (refused,))
    found = [
        _status(version),
        *([_card(card, gates.card)] if gates.card else []),
        *(_metric(version, rule) for rule in gates.metrics),
        *([_fairness(card, gates.fairness.max_disparity)] if gates.fairness else []),
        *([_lineage(version)] if gates.lineage else []),
        approvals_gate(version, approval_state(approvals, environment), gates),
        *([_monitoring(spec)] if gates.monitoring else []),
        *([_escalation(spec)] if gates.escalation else []),
    ]
    return Report(model.name, version.version, environment, model.risk_tier.value, policy_version, tuple(found))


def _status(version: models.ModelVersion) -> Gate:
    if version.status in (lifecycle.DEPRECATED, lifecycle.ARCHIVED):
        return Gate("status", Outcome.FAIL, f"the version is {version.status}; register or pick a current version")
    return Gate("status", Outcome.PASS, f"status {version.status}")


def _card(card: cards.ModelCard, required: Sequence[str]) -> Gate:
    missing = cards.missing_fields(card, required)
    if missing:
        return Gate("card", Outcome.FAIL, f"model card lacks {', '.join(missing)}: fill them in with "
                                          "`threadline models card NAME@V --edit FILE`")
    return Gate("card", Outcome.PASS, f"model card has all {len(required)} required fields")


def _metric(version: models.ModelVersion, rule: MetricGate) -> Gate:
    name = f"metric:{rule.name}"
    value = version.metrics.get(rule.name)
    if value is None:
        return Gate(name, Outcome.FAIL, f"no {rule.name!r} metric recorded; the policy needs {rule.describe()} "
                                        "(record it when registering the version)")
    if (rule.min is not None and value < rule.min) or (rule.max is not None and value > rule.max):
        return Gate(name, Outcome.FAIL, f"{rule.name} is {value:g}; the policy needs {rule.describe()}")
    return Gate(name, Outcome.PASS, f"{rule.name} {value:g} meets {rule.describe()}")


def disparity(results: Sequence[cards.FairnessResult]) -> tuple[float, str]:
    """The largest gap between groups of one attribute on one metric, and where it is."""
    by_key: dict[tuple[str, str], list[float]] = defaultdict(list)
    for result in results:
        by_key[(result.attribute, result.metric)].append(result.value)
    worst, where = 0.0, ""
    for (attribute, metric), values in by_key.items():
        gap = max(values) - min(values)
        if gap > worst:
            worst, where = gap, f"{metric} across {attribute}"
    return worst, where


def _fairness(card: cards.ModelCard, limit: float) -> Gate:
    results = card.quantitative_analysis.fairness
    if not results:
        return Gate("fairness", Outcome.FAIL, "no fairness evaluation: attach per-group results in the card's "
                                              "quantitative_analysis.fairness")
    gap, where = disparity(results)
    if gap > limit:
        return Gate("fairness", Outcome.FAIL, f"disparity {gap:.3g} in {where} exceeds the policy's {limit:g}")
    return Gate("fairness", Outcome.PASS, f"largest disparity {gap:.3g} is within {limit:g} "
                                          f"({len(results)} group results)")


def _lineage(version: models.ModelVersion) -> Gate:
    lineage = version.lineage
    problems = []
    if not lineage.training_data:
        problems.append("no training data reference")
    elif any(ref.digest is None for ref in lineage.training_data):
        problems.append("a training data reference has no digest")
    if not lineage.code_commit:
        problems.append("no code commit")
    if problems:
        return Gate("lineage", Outcome.FAIL, "; ".join(problems) + ": register the version with its training "
                                                                   "data and code commit")
    return Gate("lineage", Outcome.PASS, f"{len(lineage.training_data)} training data reference(s) with digests, "
                                         f"commit {lineage.code_commit}")


def approvals_gate(version: models.ModelVersion, state: ApprovalState, gates: Gates) -> Gate:
    """Whether the open round has the approvers the rules ask for (the dashboard asks it alone,
    to tell rounds still waiting for a decision from those already decided)."""
    # The registrant never counts, even if a record slipped in before a rule changed.
    counted = [a for a in (state.mfa_approvers if gates.mfa else state.approvers) if a != version.created_by]
    kind = "distinct MFA-verified approvers" if gates.mfa else "distinct approvers"
    if len(counted) >= gates.approvals:
        who = f": {', '.join(counted)}" if counted else ""
        return Gate("approvals", Outcome.PASS, f"{len(counted)} of {gates.approvals} {kind}{who}")
    if state.rejected_by is not None:
        hint = f"rejected by {state.rejected_by}; fix the version and request approval again"
    elif not state.requested:
        hint = "request approval first (`threadline approvals request NAME@V --env ENV`)"
    else:
        hint = f"needs {gates.approvals - len(counted)} more approver(s) other than {version.created_by}"
    return Gate("approvals", Outcome.FAIL, f"{len(counted)} of {gates.approvals} {kind}: {hint}")


def _monitoring(spec: deployment_spec.DeploymentSpec | None) -> Gate:
    if spec is None:
        return Gate("monitoring", Outcome.DEFERRED, "checked against the deployment spec when it is deployed")
    if spec.monitoring.drift is None and spec.monitoring.accuracy is None:
        return Gate("monitoring", Outcome.FAIL, "the deployment spec configures no drift or accuracy monitoring: "
                                                "add spec.monitoring.drift")
    return Gate("monitoring", Outcome.PASS, "drift or accuracy monitoring configured")


def _escalation(spec: deployment_spec.DeploymentSpec | None) -> Gate:
    if spec is None:
        return Gate("escalation", Outcome.DEFERRED, "checked against the deployment spec when it is deployed")
    if spec.escalation is None:
        return Gate("escalation", Outcome.FAIL, "no human oversight: add spec.escalation (confidenceBelow, queue)")
    return Gate("escalation", Outcome.PASS, f"predictions below {spec.escalation.confidence_below:g} confidence "
                                            f"go to queue {spec.escalation.queue}")
