"""The production readiness checklist of one deployment, judged from its spec and registry facts.

"Can this go to production?" is asked before every promotion, and the answer must be the same
whoever asks, so it is computed, not remembered: each item is checked from the ModelDeployment
spec and a few facts the caller gathers (card and lineage completeness, retention, TLS,
tracing). Some things no spec can show (network policies, cost attribution); those items stay
"needs attestation" until a person signs an ``Attestation`` for them, and only those items may be
attested, so a signature can never paper over a check that failed. The module is pure: the
caller verifies attestation signatures (it holds the keys) and stores them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from threadline.domain import errors, models
from threadline.gitops import spec

Status = Literal["pass", "fail", "needs attestation", "attested"]
PASS: Status = "pass"
FAIL: Status = "fail"
NEEDS_ATTESTATION: Status = "needs attestation"
ATTESTED: Status = "attested"
STATUSES: tuple[Status, ...] = (PASS, FAIL, NEEDS_ATTESTATION, ATTESTED)
CATEGORIES = ("infrastructure", "observability", "security", "compliance")
PRODUCTION = "production"
_MESSAGE_PURPOSE = "threadline/readiness-attestation/v1"  # a signature for this cannot be reused elsewhere


@dataclass(frozen=True, kw_only=True)
class Facts:
    deployment: spec.ModelDeployment
    model: models.Model
    version: models.ModelVersion | None  # None: an alias not yet resolved
    card_complete: bool
    lineage_complete: bool
    audit_retention_days: int
    policy_min_retention_days: int
    tls: bool
    tracing: bool
    measured_minutes: int = 0  # utilization minutes sampled in the last week
    autoscaled: int = 0        # autoscaling events in the last 30 days


@dataclass(frozen=True)
class Attestation:
    """A person's signed statement that an item holds; ``signature`` is Ed25519 over
    ``attestation_message(...)``, in hex, checked by the caller before it gets here."""

    item_id: str
    actor: str
    time: datetime
    comment: str
    signature: str


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    title: str
    status: Status
    detail: str
    attestation: Attestation | None = None


@dataclass(frozen=True)
class Checklist:
    deployment: tuple[str, str]  # (name, environment)
    model: str
    version: int | None
    items: tuple[Item, ...]
    ready: bool  # no item failed and none awaits attestation
    counts: Mapping[str, int]

    def by_category(self) -> Iterator[tuple[str, tuple[Item, ...]]]:
        for category in CATEGORIES:
            yield category, tuple(item for item in self.items if item.category == category)


_Result = tuple[Status, str]


# --- infrastructure


def _replicas(f: Facts) -> _Result:
    needed = 2 if f.deployment.metadata.environment == PRODUCTION else 1
    found = f.deployment.spec.replicas.min
    if found < needed:
        why = "so one failing replica does not stop serving" if needed > 1 else "so the model is served"
        return FAIL, f"spec.replicas.min is {found}: set it to at least {needed} {why}"
    return PASS, f"at least {found} replica(s) always run"


def _autoscaling(f: Facts) -> _Result:
    replicas = f.deployment.spec.replicas
    if replicas.max == replicas.min:
        return PASS, f"fixed at {replicas.min} replica(s): raise spec.replicas.max to absorb load peaks"
    if not f.autoscaled:
        return FAIL, (f"bounds {replicas.min}-{replicas.max} are set but the autoscaler has not scaled this "
                      "deployment in 30 days: load-test it (bench/capacity.py) so the bounds are tested")
    return PASS, (f"scales between {replicas.min} and {replicas.max} replicas; scaled {f.autoscaled} time(s) in "
                  "30 days")


def _cost_tracking(f: Facts) -> _Result:
    if not f.measured_minutes:
        return FAIL, ("no utilization measured in the last 7 days: `threadline cost` cannot attribute this "
                      "deployment (the local runtime samples deployments while `threadline up` runs)")
    return PASS, (f"{f.measured_minutes} replica-minutes measured in 7 days; `threadline cost` attributes them to "
                  f"team {f.deployment.metadata.owner}")


def _health(f: Facts) -> _Result:
    health = f.deployment.spec.health
    limits: list[str] = []
    if health.max_error_rate is not None:
        limits.append(f"error rate above {health.max_error_rate:g}")
    if health.max_p99_latency_ms is not None:
        limits.append(f"p99 latency above {health.max_p99_latency_ms:g} ms")
    if not limits:
        return FAIL, ("spec.health sets neither maxErrorRate nor maxP99LatencyMs: a revision that serves "
                      "errors would never be rolled back; set at least one")
    return PASS, (f"ready within {health.readiness_timeout:g}s; rolls back after "
                  f"{health.failure_threshold} failed checks on {' or '.join(limits)}")


def _resources(f: Facts) -> _Result:
    s = f.deployment.spec
    # Defaults fill in what YAML left out, so only the fields the author set count as declared.
    declared = "resources" in s.model_fields_set and {"cpu", "memory"} <= s.resources.model_fields_set
    if not declared:
        return FAIL, (f"spec.resources does not set both cpu and memory: the defaults (cpu "
                      f"{s.resources.cpu}, memory {s.resources.memory}) are a guess; declare what "
                      "the model needs")
    return PASS, f"cpu {s.resources.cpu}, memory {s.resources.memory} per replica"


def _gpu_isolation(f: Facts) -> _Result:
    s = f.deployment.spec
    if s.resources.gpu == 0:
        return PASS, "no GPU requested"
    if s.node_selector or s.tolerations:
        return PASS, f"{s.resources.gpu} GPU(s) per replica, placed by node selector or tolerations"
    return FAIL, (f"spec.resources.gpu is {s.resources.gpu} but neither spec.nodeSelector nor "
                  "spec.tolerations is set: add a nodeSelector for the GPU nodes so replicas land there")


# --- observability


def _tracing(f: Facts) -> _Result:
    if not f.tracing:
        return FAIL, ("tracing is off: install threadline[otel] and set OTEL_EXPORTER_OTLP_ENDPOINT so "
                      "trace context propagates through serving")
    return PASS, "trace context propagates and spans are exported"


def _metrics(f: Facts) -> _Result:
    return PASS, "Prometheus metrics are always served at /metrics (token required)"


def _drift(f: Facts) -> _Result:
    drift = f.deployment.spec.monitoring.drift
    if drift is None:
        return FAIL, "spec.monitoring.drift is not set: add it so a shift in inputs is noticed"
    return PASS, f"drift checked over {drift.window:g}s windows ({drift.method or 'default method'})"


def _alerts(f: Facts) -> _Result:
    # The URLs themselves are never shown: they might carry a secret.
    monitoring = f.deployment.spec.monitoring
    routed = [name for name, rule in (("drift", monitoring.drift), ("accuracy", monitoring.accuracy),
                                      ("latency", monitoring.latency)) if rule is not None and rule.notify]
    if not routed and monitoring.retrain is None:
        return FAIL, ("no alert route: set notify on spec.monitoring's drift, accuracy or latency rules (or "
                      "spec.monitoring.retrain) so alerts reach someone")
    if not routed:
        return PASS, "breaches call spec.monitoring.retrain"
    return PASS, f"alerts of {', '.join(routed)} are posted, signed, to their notify webhooks"


# --- security


def _authentication(f: Facts) -> _Result:
    return PASS, "every control-plane route and inference endpoint requires a token; it cannot be turned off"


def _tls(f: Facts) -> _Result:
    if not f.tls:
        return FAIL, ("served without TLS: tokens and inputs travel in clear; serve with a certificate "
                      "or terminate TLS in front of it")
    return PASS, "served over TLS"


def _rate_limit(f: Facts) -> _Result:
    serving = f.deployment.spec.serving
    if serving.rate_limit <= 0:
        return FAIL, ("spec.serving.rateLimit is 0 (unlimited): set a per-token limit so one client cannot "
                      "starve the others")
    return PASS, f"{serving.rate_limit:g} requests/s per token, bursts of {serving.rate_burst}"


_SECRETS = (
    ("a Threadline API token", re.compile(r"\btl_[A-Za-z0-9_-]{16,}")),
    ("an AWS access key id", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a password", re.compile(r"(?i)\b(?:password|passwd|pwd)\s*[=:]")),
    ("a credential parameter", re.compile(
        r"(?i)[?&;](?:token|access_token|api[_-]?key|apikey|secret|client_secret|sig|signature)=[^&\s]")),
    ("a private key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
    ("a GitHub token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
)


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _strings(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _strings(inner, f"{path}[{index}]")


def secret_fields(deployment: spec.ModelDeployment) -> tuple[tuple[str, str], ...]:
    """(YAML field path, kind of secret) for every string value that looks like a credential."""
    found: list[tuple[str, str]] = []
    for path, text in _strings(deployment.model_dump(by_alias=True, mode="json"), ""):
        kind = next((kind for kind, pattern in _SECRETS if pattern.search(text)), None)
        if kind is not None:
            found.append((path, kind))
    return tuple(found)


def _secrets(f: Facts) -> _Result:
    found = secret_fields(f.deployment)
    if found:
        where = "; ".join(f"{path} looks like it holds {kind}" for path, kind in found)
        return FAIL, (f"{where}: remove it from the spec, rotate it (Git keeps it in history) and hand it "
                      "to the runtime as a secret")
    return PASS, "no string in the spec looks like a credential"


def _privileged(f: Facts) -> _Result:
    return PASS, "the spec cannot express privileged containers, host paths or host networking"


# --- compliance


def _reference(f: Facts) -> str:
    s = f.deployment.spec
    return f"{s.model}@{f.version.version if f.version is not None else s.version or s.alias}"


def _card(f: Facts) -> _Result:
    if not f.card_complete:
        return FAIL, (f"the model card of {_reference(f)} misses sections the policy requires: register "
                      "a version with a complete --card")
    return PASS, f"the model card of {_reference(f)} is complete"


def _lineage(f: Facts) -> _Result:
    if not f.lineage_complete:
        return FAIL, (f"the lineage of {_reference(f)} is incomplete: register a version with "
                      "--training-data and code_repo/code_commit in --lineage")
    return PASS, f"the lineage of {_reference(f)} is complete"


def _audit_retention(f: Facts) -> _Result:
    days, minimum = f.audit_retention_days, f.policy_min_retention_days
    if days < minimum:
        return FAIL, f"audit records are kept {days} days; the policy requires {minimum}: raise the retention"
    return PASS, f"audit records are kept {days} days (policy minimum {minimum})"


def _escalation(f: Facts) -> _Result:
    escalation = f.deployment.spec.escalation
    if escalation is not None:
        return PASS, (f"predictions below confidence {escalation.confidence_below:g} go to queue "
                      f"{escalation.queue}")
    if f.model.risk_tier is models.RiskTier.HIGH:
        return FAIL, "a high-risk model needs human oversight: set spec.escalation (confidenceBelow, queue)"
    return PASS, f"not required for risk tier {f.model.risk_tier.value}"


# --- the checklist


@dataclass(frozen=True)
class _Definition:
    id: str
    title: str
    check: Callable[[Facts], _Result] | None  # None: only a person can tell; ``attest`` says what
    attest: str = ""


_ITEMS: tuple[_Definition, ...] = (
    _Definition("infrastructure.replicas", "Enough replicas for the environment", _replicas),
    _Definition("infrastructure.autoscaling", "Autoscaling bounds", _autoscaling),
    _Definition("infrastructure.health_checks", "Health checks with rollback thresholds", _health),
    _Definition("infrastructure.resources", "Resource requests and limits", _resources),
    _Definition("infrastructure.gpu_isolation", "GPU workloads isolated", _gpu_isolation),
    _Definition("infrastructure.network_policy", "Network policy", None, (
        "Threadline cannot see the cluster's network policies: attest that only the gateway reaches the "
        "serving pods and their egress is restricted")),
    _Definition("observability.tracing", "Trace propagation", _tracing),
    _Definition("observability.metrics", "Metrics", _metrics),
    _Definition("observability.drift", "Drift detection", _drift),
    _Definition("observability.alerts", "Alert routes", _alerts),
    _Definition("observability.cost_tracking", "Cost tracking", _cost_tracking),
    _Definition("security.authentication", "Authentication", _authentication),
    _Definition("security.tls", "TLS in transit", _tls),
    _Definition("security.rate_limits", "Rate limits", _rate_limit),
    _Definition("security.secrets", "Secrets referenced, not inlined", _secrets),
    _Definition("security.privileged", "No privileged settings", _privileged),
    _Definition("compliance.model_card", "Model card complete", _card),
    _Definition("compliance.lineage", "Lineage complete", _lineage),
    _Definition("compliance.audit_retention", "Audit retention meets the policy", _audit_retention),
    _Definition("compliance.escalation", "Human oversight for high risk", _escalation),
)
ITEM_IDS: tuple[str, ...] = tuple(d.id for d in _ITEMS)
ATTESTABLE: frozenset[str] = frozenset(d.id for d in _ITEMS if d.check is None)


def evaluate(facts: Facts, attestations: Iterable[Attestation] = ()) -> Checklist:
    """Check every item; attestations turn "needs attestation" items into "attested".

    Raises InvalidInput for an attestation of an unknown item or of one checked automatically.
    """
    signed = _latest(attestations)
    items: list[Item] = []
    for definition in _ITEMS:
        category = definition.id.partition(".")[0]
        attestation = signed.get(definition.id)
        if definition.check is not None:
            status, detail = definition.check(facts)
        elif attestation is not None:
            status, detail = ATTESTED, (f"attested by {attestation.actor} at "
                                        f"{attestation.time.isoformat()}: {attestation.comment}")
        else:
            status, detail = NEEDS_ATTESTATION, definition.attest
        items.append(Item(definition.id, category, definition.title, status, detail, attestation))
    counts: dict[str, int] = {status: sum(item.status == status for item in items) for status in STATUSES}
    version = facts.version.version if facts.version is not None else facts.deployment.spec.version
    return Checklist(deployment=facts.deployment.key, model=facts.deployment.spec.model, version=version,
                     items=tuple(items), ready=counts[FAIL] == 0 and counts[NEEDS_ATTESTATION] == 0,
                     counts=counts)


def _latest(attestations: Iterable[Attestation]) -> dict[str, Attestation]:
    latest: dict[str, Attestation] = {}
    for attestation in attestations:
        _require_attestable(attestation.item_id)
        held = latest.get(attestation.item_id)
        if held is None or attestation.time >= held.time:
            latest[attestation.item_id] = attestation
    return latest


def _require_attestable(item_id: str) -> None:
    if item_id not in ITEM_IDS:
        raise errors.InvalidInput(f"no checklist item {item_id[:80]!r}; items that may be attested: "
                                  f"{', '.join(sorted(ATTESTABLE))}", field="item")
    if item_id not in ATTESTABLE:
        raise errors.InvalidInput(f"{item_id} is checked automatically and cannot be attested: fix what "
                                  "its detail names instead", field="item")


def attestation_message(deployment_key: tuple[str, str], item_id: str, actor: str, time: datetime,
                        comment: str) -> bytes:
    """The exact bytes an attester signs with Ed25519: sorted-key compact JSON, ASCII only.

    The deployment and a purpose string are inside, so a signature for one deployment or item
    cannot be replayed for another; the time must carry a zone so it reads the same everywhere.
    """
    _require_attestable(item_id)
    if time.tzinfo is None or time.utcoffset() is None:
        raise errors.InvalidInput("the attestation time needs a timezone", field="time")
    name, environment = deployment_key
    statement = {"purpose": _MESSAGE_PURPOSE, "deployment": name, "environment": environment,
                 "item": item_id, "actor": actor, "time": time.isoformat(), "comment": comment}
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")
