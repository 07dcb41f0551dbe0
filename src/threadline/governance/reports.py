"""Gather the evidence the compliance report and the readiness checklist judge.

The judging is pure (``compliance.evaluate``, ``readiness.evaluate``); this module reads the
store once per report and records signed attestations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, models
from threadline.gitops import spec as deployment_spec
from threadline.governance import cards, compliance, gates, readiness
from threadline.governance.service import Governance
from threadline.registry.service import version_by_ref

ENVIRONMENTS = ("staging", "production")


@dataclass(frozen=True)
class Retention:
    """What this installation keeps, from its settings."""

    audit_days: int
    prediction_log_days: int | None


class Reports:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, governance: Governance, clock: ports.Clock,
                 signer: ports.Signer, retention: Retention, *, tls: bool) -> None:
        self._store = store
        self._audit = audit
        self._governance = governance
        self._clock = clock
        self._signer = signer
        self._retention = retention
        self._tls = tls

    def compliance(self, name: str, ref: str | int,
                   deployment: deployment_spec.ModelDeployment | None = None) -> compliance.ComplianceReport:
        version, card, _ = self._governance.card(name, ref)
        environments = [deployment.metadata.environment] if deployment else list(ENVIRONMENTS)
        spec = deployment.spec if deployment else None
        reports = [self._governance.check(version.model, version.version, env, spec) for env in environments]
        verified = self._audit.verify(self._store).ok
        with self._store.reading() as tx:
            model = tx.get_model(version.model)
            approvals = tx.approvals(version.model, version.version)
            entries = tx.count_audit_entries(object_prefix=f"model/{version.model}/version/{version.version}")
        in_force = self._governance.policy()
        return compliance.evaluate(compliance.Evidence(
            model=model, version=version, audit_retention_days=self._retention.audit_days,
            card_sections={section: not cards.missing_fields(card, [section]) for section in cards.SECTIONS},
            fairness=bool(card.quantitative_analysis.fairness),
            approvals=tuple(compliance.ApprovalEvidence(a.environment, a.actor, a.time, a.mfa) for a in approvals
                            if a.decision is models.Decision.APPROVE),
            gates=tuple(compliance.GateEvidence(g.name, r.environment, g.passed, g.reason)
                        for r in reports for g in r.gates if g.outcome is not gates.Outcome.DEFERRED),
            audit_entries=entries, audit_verified=verified, deployment=deployment,
            prediction_log_retention_days=self._retention.prediction_log_days,
            policy_version=in_force.version))

    def readiness(self, deployment: deployment_spec.ModelDeployment) -> readiness.Checklist:
        spec = deployment.spec
        ref: str | int = spec.version if spec.version is not None else str(spec.alias)
        with self._store.reading() as tx:
            model = tx.get_model(spec.model)
            try:
                version: models.ModelVersion | None = version_by_ref(tx, spec.model, ref)
            except errors.NotFound:
                version = None
            stored = tx.attestations(deployment.metadata.name, deployment.metadata.environment)
            key = (deployment.metadata.name, deployment.metadata.environment)
            now = self._clock.now()
            measured = len(tx.utilization(*key, now - timedelta(days=7), now))
            autoscaled = sum(1 for h in tx.deployment_history(*key, limit=1000)
                             if h.action == "autoscale" and h.outcome == "applied" and now - h.time < timedelta(days=30))
        in_force = self._governance.policy().parsed
        card_complete = lineage_complete = False
        if version is not None:
            report = self._governance.check(spec.model, version.version, deployment.metadata.environment, spec)
            by_name = {gate.name: gate for gate in report.gates}
            card_complete = "card" not in by_name or by_name["card"].passed
            lineage = version.lineage
            lineage_complete = bool(lineage.training_data and lineage.code_commit
                                    and all(d.digest for d in lineage.training_data))
        facts = readiness.Facts(
            deployment=deployment, model=model, version=version, card_complete=card_complete,
            lineage_complete=lineage_complete, audit_retention_days=self._retention.audit_days,
            policy_min_retention_days=in_force.retention.audit_days, tls=self._tls, tracing=True,
            measured_minutes=measured, autoscaled=autoscaled)
        return readiness.evaluate(facts, [self._verified(deployment, a) for a in stored])

    def _verified(self, deployment: deployment_spec.ModelDeployment, record: models.Attestation) -> readiness.Attestation:
        """Only attestations whose signature checks count; a forged row is an integrity error."""
        message = readiness.attestation_message(deployment.key, record.item, record.actor, record.time, record.comment)
        if record.key_id != self._signer.key_id or not self._signer.verify(message, record.signature):
            raise errors.IntegrityError(f"attestation {record.id} of {record.item} does not verify with key "
                                        f"{self._signer.key_id}: it was altered or signed with another key")
        return readiness.Attestation(record.item, record.actor, record.time, record.comment, record.signature.hex())

    def attest(self, actor: access.Actor, deployment: deployment_spec.ModelDeployment, item: str,
               comment: str) -> models.Attestation:
        """Record a signed statement that a readiness item holds (only items no check can see)."""
        actor.require(access.Permission.ATTEST)
        if not comment.strip() or len(comment) > 10_000:
            raise errors.InvalidInput("say what you checked, in at most 10000 characters", field="comment")
        name, environment = deployment.key
        time = self._clock.now()
        message = readiness.attestation_message(deployment.key, item, actor.name, time, comment)
        with self._store.writing() as tx:
            record = tx.add_attestation(models.Attestation(
                name, environment, item, actor.name, comment, time, self._signer.key_id, self._signer.sign(message)))
            self._audit.record(tx, actor.name, "readiness.attest", f"deployment/{environment}/{name}",
                               {"item": item, "comment": comment})
        return record
