"""The compliance report: what the registry knows about one version, mapped to regulatory controls.

An auditor asks "where is the evidence for Art. 10?", not "what does the registry hold?"; this
module answers the first question from the second. It is pure: the caller gathers the evidence
(version, approvals, gate results, audit state, deployment spec) and this module only judges it,
so the mapping is tested with values in and a report out.

A control is ``satisfied`` when Threadline holds the evidence, ``missing`` when it could hold it
but does not (the detail says how to supply it), and ``needs attestation`` when no registry can
know (a documented risk-management process, security testing): a person must vouch for those.
The mapping is one table (``_CONTROLS``) of small reusable checks, so a reviewer can read which
evidence stands behind which article without following a function per control.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from threadline.domain import models
from threadline.gitops import spec
from threadline.governance import cards

Status = Literal["satisfied", "missing", "needs attestation"]
SATISFIED: Status = "satisfied"
MISSING: Status = "missing"
NEEDS_ATTESTATION: Status = "needs attestation"
STATUSES: tuple[Status, ...] = (SATISFIED, MISSING, NEEDS_ATTESTATION)

EU_AI_ACT = "EU AI Act"
NIST_AI_RMF = "NIST AI RMF"
ISO_42001 = "ISO/IEC 42001"
FRAMEWORKS = (EU_AI_ACT, NIST_AI_RMF, ISO_42001)

LOG_RETENTION_DAYS = 183  # Art. 19(1) and 26(6): logs are kept at least six months
DOCUMENTATION_RETENTION_DAYS = 3650  # Art. 18(1): documentation is kept ten years
CARD_SECTIONS = cards.SECTIONS
NO_DEPLOYMENT = "no deployment given: pass --deployment FILE"


@dataclass(frozen=True)
class ApprovalEvidence:
    environment: str
    approver: str
    time: datetime
    mfa: bool


@dataclass(frozen=True)
class GateEvidence:
    """One policy gate's result for one environment, as the policy engine reported it."""

    name: str
    environment: str
    passed: bool
    reason: str


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """Everything the report judges. Defaults mean "none found", so a forgotten field can only
    turn a control to missing, never to satisfied."""

    model: models.Model
    version: models.ModelVersion
    audit_retention_days: int
    card_sections: Mapping[str, bool] = field(default_factory=dict)
    fairness: bool = False
    approvals: tuple[ApprovalEvidence, ...] = ()
    gates: tuple[GateEvidence, ...] = ()
    audit_entries: int = 0
    audit_verified: bool | None = None
    deployment: spec.ModelDeployment | None = None
    prediction_log_retention_days: int | None = None  # None: predictions are not logged
    policy_version: int | None = None
    base_url: str = "/api/v1"


@dataclass(frozen=True)
class Control:
    framework: str
    control_id: str
    title: str
    status: Status
    detail: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class ComplianceReport:
    model: str
    version: int
    risk_tier: str
    generated_from: Mapping[str, Any]  # JSON-ready summary of the evidence that was judged
    controls: tuple[Control, ...]
    counts: Mapping[str, int]  # every status in STATUSES, zero included


# --- checks: each returns one finding; ``link`` names the evidence page when the finding holds


@dataclass(frozen=True)
class _Finding:
    ok: bool
    text: str  # what was found when ok, else what is missing and how to supply it
    link: str | None = None


_Check = Callable[[Evidence], _Finding]


def _card(*sections: str) -> _Check:
    def check(e: Evidence) -> _Finding:
        empty = [name for name in sections if not e.card_sections.get(name)]
        if empty:
            return _Finding(False, f"model card lacks {', '.join(empty)}: register a new version with "
                                   "these sections filled in its --card YAML")
        return _Finding(True, f"model card documents {', '.join(sections)}", "card")
    return check


def _risk_tier(e: Evidence) -> _Finding:
    tier = e.model.risk_tier
    if tier is models.RiskTier.UNACCEPTABLE:
        return _Finding(False, "risk tier is unacceptable: such a system may not be placed on the "
                               "market (Art. 5) and never deploys")
    return _Finding(True, f"risk tier {tier.value}", "version")


def _policy(e: Evidence) -> _Finding:
    if e.policy_version is None:
        return _Finding(False, "no governance policy version recorded: evaluate the version against a "
                               "versioned policy so its gates are on record")
    return _Finding(True, f"governance policy version {e.policy_version}")


def _gates(e: Evidence) -> _Finding:
    if not e.gates:
        return _Finding(False, "no policy gates evaluated: request approval for an environment so the "
                               "policy's gates are checked")
    failed = [f"gate {g.name} ({g.environment}) failed: {g.reason}" for g in e.gates if not g.passed]
    if failed:
        return _Finding(False, "; ".join(failed))
    environments = sorted({g.environment for g in e.gates})
    return _Finding(True, f"{len(e.gates)} policy gates passed ({', '.join(environments)})", "approvals")


def _approvals(e: Evidence) -> _Finding:
    if not e.approvals:
        return _Finding(False, "no approvals: an approver other than the registrant must approve this "
                               "version for its target environment")
    who = [f"{a.approver} ({a.environment}{', MFA' if a.mfa else ''}, {a.time:%Y-%m-%d})"
           for a in e.approvals]
    return _Finding(True, f"approved by {', '.join(who)}", "approvals")


def _separation_of_duties(e: Evidence) -> _Finding:
    if not e.approvals:
        return _approvals(e)
    own = sorted({a.approver for a in e.approvals if a.approver == e.version.created_by})
    if own:
        return _Finding(False, f"{', '.join(own)} approved a version they registered: approvals must "
                               "come from someone else")
    approvers = {a.approver for a in e.approvals}
    return _Finding(True, f"{len(approvers)} distinct approver(s), none of them the registrant "
                          f"{e.version.created_by}", "approvals")


def _owner(e: Evidence) -> _Finding:
    return _Finding(True, f"owned by {e.model.owner}; registered by {e.version.created_by}", "version")


def _context(e: Evidence) -> _Finding:
    if not (e.model.description.strip() or e.version.description.strip()):
        return _Finding(False, "neither the model nor the version has a description of its context: "
                               "register a version with --description")
    return _Finding(True, "model and version describe their context", "version")


def _versioned(e: Evidence) -> _Finding:
    return _Finding(True, f"immutable version {e.version.version}, artifact sha256:"
                          f"{e.version.artifact_digest[:12]}", "version")


def _code_lineage(e: Evidence) -> _Finding:
    lineage = e.version.lineage
    absent = [name for name in ("code_repo", "code_commit") if not getattr(lineage, name)]
    if absent:
        return _Finding(False, f"lineage lacks {', '.join(absent)}: register a new version with them in "
                               "its --lineage YAML")
    return _Finding(True, f"code {lineage.code_repo}@{lineage.code_commit}", "version")


def _training_data(e: Evidence) -> _Finding:
    data = e.version.lineage.training_data
    if not data:
        return _Finding(False, "no training data in the lineage: register with --training-data FILE, or "
                               "list the datasets with digests in --lineage")
    undigested = [ref.uri for ref in data if not ref.digest]
    if undigested:
        return _Finding(False, f"training data without a digest ({', '.join(undigested)}): record each "
                               "dataset's sha256 so the exact data can be identified")
    return _Finding(True, f"trained on {len(data)} dataset(s), each pinned by digest", "version")


def _profile(e: Evidence) -> _Finding:
    if not e.version.has_profile:
        return _Finding(False, "no reference data profile: register with --training-data FILE so one "
                               "is computed")
    return _Finding(True, "reference data profile recorded", "profile")


def _fairness(e: Evidence) -> _Finding:
    if not e.fairness:
        return _Finding(False, "no fairness evaluation: register the version with per-group metrics in "
                               "the card's quantitative_analysis.fairness")
    return _Finding(True, "per-group fairness results recorded", "card")


def _metrics(e: Evidence) -> _Finding:
    metrics = e.version.metrics
    if not metrics:
        return _Finding(False, "no metrics recorded: register with --metric NAME=VALUE")
    shown = ", ".join(f"{name}={value:g}" for name, value in sorted(metrics.items())[:5])
    more = f" and {len(metrics) - 5} more" if len(metrics) > 5 else ""
    return _Finding(True, f"metrics {shown}{more}", "version")


def _audit(e: Evidence) -> _Finding:
    if e.audit_entries <= 0:
        return _Finding(False, "the audit log holds no entry about this version: register and approve it "
                               "through Threadline so every step is recorded")
    if e.audit_verified is None:
        return _Finding(False, f"{e.audit_entries} audit entries, but the chain was not verified: run "
                               "threadline audit verify")
    if not e.audit_verified:
        return _Finding(False, "audit chain verification FAILED: the log was altered; run threadline "
                               "audit verify and investigate before relying on it")
    return _Finding(True, f"{e.audit_entries} audit entries; hash chain verified", "audit")


def _prediction_logs(e: Evidence) -> _Finding:
    days = e.prediction_log_retention_days
    if days is None:
        return _Finding(False, f"predictions are not logged: enable the prediction log with a retention "
                               f"of at least {LOG_RETENTION_DAYS} days")
    if days < LOG_RETENTION_DAYS:
        return _Finding(False, f"prediction logs are kept {days} days, fewer than {LOG_RETENTION_DAYS}: "
                               "raise their retention")
    return _Finding(True, f"prediction logs kept {days} days")


def _audit_retention(minimum: int) -> _Check:
    def check(e: Evidence) -> _Finding:
        days = e.audit_retention_days
        if days < minimum:
            return _Finding(False, f"audit records are kept {days} days, fewer than {minimum}: raise the "
                                   "audit retention")
        return _Finding(True, f"audit records kept {days} days", "audit")
    return check


def _deployed(check: Callable[[Evidence, spec.DeploymentSpec], _Finding]) -> _Check:
    """Checks of the deployment spec; without a deployment they cannot hold."""
    def wrapped(e: Evidence) -> _Finding:
        if e.deployment is None:
            return _Finding(False, NO_DEPLOYMENT)
        return check(e, e.deployment.spec)
    return wrapped


@_deployed
def _escalation(e: Evidence, s: spec.DeploymentSpec) -> _Finding:
    if s.escalation is not None:
        return _Finding(True, f"predictions below confidence {s.escalation.confidence_below:g} go to "
                              f"review queue {s.escalation.queue}", "deployment")
    if e.model.risk_tier is models.RiskTier.HIGH:
        return _Finding(False, "a high-risk model needs human oversight: set spec.escalation "
                               "(confidenceBelow, queue) in the deployment")
    return _Finding(True, f"no escalation configured; not required for risk tier {e.model.risk_tier.value}")


@_deployed
def _drift_monitoring(e: Evidence, s: spec.DeploymentSpec) -> _Finding:
    if s.monitoring.drift is None:
        return _Finding(False, "the deployment does not monitor drift: set spec.monitoring.drift")
    return _Finding(True, f"drift monitored ({s.monitoring.drift.method or 'default method'})", "deployment")


@_deployed
def _accuracy_monitoring(e: Evidence, s: spec.DeploymentSpec) -> _Finding:
    if s.monitoring.accuracy is None:
        return _Finding(False, "the deployment does not monitor accuracy: set spec.monitoring.accuracy")
    return _Finding(True, f"accuracy monitored ({s.monitoring.accuracy.metric})", "deployment")


@_deployed
def _rollback(e: Evidence, s: spec.DeploymentSpec) -> _Finding:
    health = s.health
    if health.max_error_rate is None and health.max_p99_latency_ms is None:
        return _Finding(False, "no rollback threshold: set spec.health.maxErrorRate or maxP99LatencyMs")
    return _Finding(True, f"rolls back after {health.failure_threshold} failed health checks", "deployment")


# --- the mapping


@dataclass(frozen=True)
class _Definition:
    framework: str
    control_id: str
    title: str
    checks: tuple[_Check, ...] = ()
    # What a person must vouch for: the whole control when there are no checks, otherwise the
    # alternative to evidence that is absent (so it reads "needs attestation", not "missing").
    attest: str = ""


_CONTROLS: tuple[_Definition, ...] = (
    _Definition(EU_AI_ACT, "Art. 9", "Risk management system", (_risk_tier, _gates, _approvals)),
    _Definition(EU_AI_ACT, "Art. 9(2)", "Risk-management process run across the life cycle", attest=(
        "Threadline records tiers, gates and approvals, not the organisation's process: attest that risk "
        "management is documented, reviewed and covers foreseeable misuse")),
    _Definition(EU_AI_ACT, "Art. 10", "Data and data governance", (_training_data, _profile, _fairness)),
    _Definition(EU_AI_ACT, "Art. 11", "Technical documentation", (
        _card("model_details", "intended_use", "metrics", "evaluation_data", "training_data"),)),
    _Definition(EU_AI_ACT, "Art. 12", "Record-keeping", (_audit,)),
    _Definition(EU_AI_ACT, "Art. 13", "Transparency and information to deployers", (
        _card("intended_use", "caveats_and_recommendations"),)),
    _Definition(EU_AI_ACT, "Art. 14", "Human oversight", (_escalation,)),
    _Definition(EU_AI_ACT, "Art. 15", "Accuracy and robustness", (
        _metrics, _accuracy_monitoring, _drift_monitoring)),
    _Definition(EU_AI_ACT, "Art. 15(5)", "Cybersecurity", attest=(
        "attest that the model and its serving path were tested against attacks (data poisoning, "
        "adversarial inputs, model extraction)")),
    _Definition(EU_AI_ACT, "Art. 19, 26(6)", f"Logs kept at least {LOG_RETENTION_DAYS} days", (
        _prediction_logs, _audit_retention(LOG_RETENTION_DAYS))),
    _Definition(EU_AI_ACT, "Art. 18", "Documentation kept for 10 years", (
        _audit_retention(DOCUMENTATION_RETENTION_DAYS),)),

    _Definition(NIST_AI_RMF, "GOVERN 1.2", "Trustworthy-AI characteristics in policy", (_policy,)),
    _Definition(NIST_AI_RMF, "GOVERN 2.1", "Roles and responsibilities documented", (_owner, _approvals)),
    _Definition(NIST_AI_RMF, "MAP 1.1", "Intended purpose and context documented", (
        _card("intended_use"), _context)),
    _Definition(NIST_AI_RMF, "MAP 1.5", "Risk tolerance determined", (_risk_tier, _policy)),
    _Definition(NIST_AI_RMF, "MAP 2.2", "Knowledge limits documented", (
        _card("caveats_and_recommendations"),)),
    _Definition(NIST_AI_RMF, "MEASURE 2.3", "Performance measured", (_metrics, _card("evaluation_data"))),
    _Definition(NIST_AI_RMF, "MEASURE 2.4", "Behaviour monitored in production", (_drift_monitoring,)),
    _Definition(NIST_AI_RMF, "MEASURE 2.7", "Security and resilience evaluated", attest=(
        "attest that security and resilience were evaluated (threat model, adversarial testing)")),
    _Definition(NIST_AI_RMF, "MEASURE 2.11", "Fairness and bias evaluated", (_fairness,)),
    _Definition(NIST_AI_RMF, "MANAGE 1.1", "Go/no-go decision on deployment", (_gates, _approvals)),
    _Definition(NIST_AI_RMF, "MANAGE 2.4", "Mechanisms to override, roll back or disengage", (
        _rollback, _escalation)),
    _Definition(NIST_AI_RMF, "MANAGE 4.1", "Post-deployment monitoring", (
        _accuracy_monitoring, _drift_monitoring)),

    _Definition(ISO_42001, "A.2.2", "AI policy", (_policy,)),
    _Definition(ISO_42001, "A.3.2", "AI roles and responsibilities", (_owner, _separation_of_duties)),
    _Definition(ISO_42001, "A.5.2", "AI system impact assessment", (_card("ethical_considerations"),),
                attest="attest the impact assessment on individuals and society, or record it in the "
                       "card's ethical_considerations"),
    _Definition(ISO_42001, "A.6.2", "AI system life cycle", (
        _versioned, _code_lineage, _training_data, _approvals)),
    _Definition(ISO_42001, "A.7.4", "Quality of data for AI systems", (_profile,)),
    _Definition(ISO_42001, "A.7.5", "Data provenance", (_training_data,)),
    _Definition(ISO_42001, "A.8.2", "System documentation and information for users", (
        _card(*CARD_SECTIONS),)),
    _Definition(ISO_42001, "A.9.4", "Intended use of the AI system", (
        _card("intended_use"), _drift_monitoring)),
)


def evaluate(evidence: Evidence) -> ComplianceReport:
    """Judge every control of every framework against ``evidence``; never raises for gaps."""
    controls = tuple(_judge(definition, evidence) for definition in _CONTROLS)
    counts: dict[str, int] = {status: sum(c.status == status for c in controls) for status in STATUSES}
    return ComplianceReport(model=evidence.model.name, version=evidence.version.version,
                            risk_tier=evidence.model.risk_tier.value, generated_from=_summary(evidence),
                            controls=controls, counts=counts)


def _judge(definition: _Definition, evidence: Evidence) -> Control:
    def control(status: Status, detail: str, links: Iterable[str] = ()) -> Control:
        return Control(definition.framework, definition.control_id, definition.title, status, detail,
                       tuple(links))

    if not definition.checks:
        return control(NEEDS_ATTESTATION, definition.attest)
    findings = [check(evidence) for check in definition.checks]
    links = _unique(_link(evidence, f.link) for f in findings if f.ok and f.link)
    unmet = _unique(f.text for f in findings if not f.ok)
    if not unmet:
        return control(SATISFIED, "; ".join(_unique(f.text for f in findings)), links)
    if definition.attest:
        return control(NEEDS_ATTESTATION, definition.attest, links)
    return control(MISSING, "; ".join(unmet), links)


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _link(evidence: Evidence, kind: str) -> str:
    base = evidence.base_url.rstrip("/")
    name, number = evidence.model.name, evidence.version.version
    version = f"{base}/models/{name}/versions/{number}"
    if kind == "version":
        return version
    if kind == "audit":
        return f"{base}/audit/entries?object=model/{name}/version/{number}"
    if kind == "deployment" and evidence.deployment is not None:
        deployment_name, environment = evidence.deployment.key
        return f"{base}/deployments/{environment}/{deployment_name}"
    return f"{version}/{kind}"  # card, approvals, profile


def _summary(e: Evidence) -> dict[str, Any]:
    return {
        "model": e.model.name,
        "version": e.version.version,
        "artifact_digest": e.version.artifact_digest,
        "risk_tier": e.model.risk_tier.value,
        "policy_version": e.policy_version,
        "card_sections": [name for name in CARD_SECTIONS if e.card_sections.get(name)],
        "fairness": e.fairness,
        "approvals": len(e.approvals),
        "gates": len(e.gates),
        "audit_entries": e.audit_entries,
        "audit_verified": e.audit_verified,
        "deployment": ({"name": e.deployment.key[0], "environment": e.deployment.key[1]}
                       if e.deployment is not None else None),
        "audit_retention_days": e.audit_retention_days,
        "prediction_log_retention_days": e.prediction_log_retention_days,
    }
