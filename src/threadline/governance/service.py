"""Governance use cases: the policy in force, cards, gate checks and the approval workflow.

Every decision is an immutable record written in one transaction with its audit entry (and
its webhook notification, when webhooks are configured). Refusals raise Forbidden or
PolicyViolation with the rule and what would satisfy it; the API audits them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, lifecycle, models, names
from threadline.gitops import spec as deployment_spec
from threadline.governance import cards, gates, policy
from threadline.registry.service import version_by_ref

_FINAL = (lifecycle.DEPRECATED, lifecycle.ARCHIVED)


@dataclass(frozen=True)
class PolicyInForce:
    version: int  # 0: the built-in pack, never set by anyone
    document: str
    parsed: policy.GovernancePolicy


class Governance:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock, *,
                 webhooks: bool = False) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._webhooks = webhooks
        self._default = PolicyInForce(0, policy.default_text(),
                                      policy.parse(policy.default_text(), policy.DEFAULT_SOURCE))
        self._parsed: dict[str, policy.GovernancePolicy] = {}

    # -- policy -------------------------------------------------------------------------

    def policy(self, tx: ports.ReadTransaction | None = None) -> PolicyInForce:
        if tx is None:
            with self._store.reading() as reading:
                return self.policy(reading)
        record = tx.latest_policy()
        if record is None:
            return self._default
        parsed = self._parsed.get(record.digest)
        if parsed is None:
            parsed = self._parsed.setdefault(record.digest, policy.parse(record.document, f"policy v{record.version}"))
        return PolicyInForce(record.version, record.document, parsed)

    def set_policy(self, actor: access.Actor, text: str, source: str) -> int:
        """Put a new policy in force; a bad document is refused and the old one stays."""
        actor.require(access.Permission.MANAGE_POLICY)
        _require_mfa(actor, "changing the governance policy")
        policy.parse(text, source)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        with self._store.writing() as tx:
            previous = self.policy(tx)
            version = previous.version + 1
            tx.add_policy(models.PolicyRecord(version, text, digest, actor.name, self._clock.now()))
            self._audit.record(tx, actor.name, "policy.set", f"policy/{version}",
                               {"digest": digest, "previous": previous.version, "source": source})
        return version

    def policies(self) -> list[models.PolicyRecord]:
        with self._store.reading() as tx:
            return tx.list_policies()

    # -- cards --------------------------------------------------------------------------

    def card(self, name: str, ref: str | int) -> tuple[models.ModelVersion, cards.ModelCard, int]:
        """The version's newest card revision (1 is the card given at registration)."""
        with self._store.reading() as tx:
            version = version_by_ref(tx, name, ref)
            card, revision = _card(tx, version)
            return version, card, revision

    def edit_card(self, actor: access.Actor, name: str, version_number: int, card: cards.ModelCard) -> int:
        actor.require(access.Permission.WRITE_MODELS)
        name = names.model_name(name)
        with self._store.writing() as tx:
            model = tx.get_model(name)
            actor.require_owner(model.owner, f"model {name!r}")
            version = tx.get_version(name, version_number)
            revision = _card(tx, version)[1] + 1
            tx.add_card_revision(models.CardRevision(
                name, version.version, revision, card.model_dump(mode="json"), actor.name, self._clock.now()))
            self._audit.record(tx, actor.name, "card.edit", f"model/{name}/version/{version.version}",
                               {"revision": revision})
        return revision

    # -- gates --------------------------------------------------------------------------

    def check(self, name: str, ref: str | int, environment: str,
              spec: deployment_spec.DeploymentSpec | None = None) -> gates.Report:
        """Every gate of the policy in force for this version in ``environment``."""
        environment = names.environment_name(environment)
        with self._store.reading() as tx:
            return self._check(tx, version_by_ref(tx, name, ref), environment, spec)

    def _check(self, tx: ports.ReadTransaction, version: models.ModelVersion, environment: str,
               spec: deployment_spec.DeploymentSpec | None = None) -> gates.Report:
        model = tx.get_model(version.model)
        in_force = self.policy(tx)
        return gates.check(model, version, _card(tx, version)[0], tx.approvals(version.model, version.version),
                           in_force.parsed.gates(model.risk_tier, environment), environment,
                           in_force.version, spec)

    def guard_alias(self, tx: ports.ReadTransaction, actor: access.Actor, name: str, alias: str,
                    version: int | None) -> None:
        """Moving (or deleting) an alias the policy protects needs a fresh code, and the new
        version must pass the gates of the environment that follows the alias."""
        environment = self.policy(tx).parsed.protected_aliases.get(alias)
        if environment is None:
            return
        _require_mfa(actor, f"moving alias {alias!r}, which {environment} follows")
        if version is None:
            return
        report = self._check(tx, tx.get_version(name, version), environment)
        if not report.passed:
            raise errors.PolicyViolation(
                f"alias {alias!r} is followed by {environment}, and {name}@{version} does not pass its gates: "
                f"{report.summary()}")

    # -- approvals ----------------------------------------------------------------------

    def approvals(self, name: str, ref: str | int) -> list[models.Approval]:
        with self._store.reading() as tx:
            version = version_by_ref(tx, name, ref)
            return tx.approvals(version.model, version.version)

    def request(self, actor: access.Actor, name: str, version: int, environment: str,
                comment: str = "") -> gates.Report:
        actor.require(access.Permission.REQUEST_APPROVAL)
        return self._decide(actor, models.Decision.REQUEST, name, version, environment, comment)

    def approve(self, actor: access.Actor, name: str, version: int, environment: str,
                comment: str = "") -> gates.Report:
        actor.require(access.Permission.DECIDE_APPROVAL)
        return self._decide(actor, models.Decision.APPROVE, name, version, environment, comment)

    def reject(self, actor: access.Actor, name: str, version: int, environment: str,
               comment: str = "") -> gates.Report:
        actor.require(access.Permission.DECIDE_APPROVAL)
        return self._decide(actor, models.Decision.REJECT, name, version, environment, comment)

    def withdraw(self, actor: access.Actor, name: str, version: int, environment: str,
                 comment: str = "") -> gates.Report:
        actor.require(access.Permission.DECIDE_APPROVAL)
        return self._decide(actor, models.Decision.WITHDRAW, name, version, environment, comment)

    def _decide(self, actor: access.Actor, decision: models.Decision, name: str, number: int,
                environment: str, comment: str) -> gates.Report:
        """Record one decision, then move the version's status if every gate now passes."""
        name, environment = names.model_name(name), names.environment_name(environment)
        if len(comment) > 10_000:
            raise errors.InvalidInput("at most 10000 characters", field="comment")
        with self._store.writing() as tx:
            version = tx.get_version(name, number)
            model = tx.get_model(name)
            state = gates.approval_state(tx.approvals(name, number), environment)
            rules = self.policy(tx).parsed.gates(model.risk_tier, environment)
            _allowed(actor, decision, version, model, state, rules, environment)
            record = tx.add_approval(models.Approval(
                name, number, environment, decision, actor.name, comment, actor.mfa_verified, self._clock.now()))
            subject = f"model/{name}/version/{number}"
            details: dict[str, Any] = {"environment": environment, "comment": comment, "mfa": actor.mfa_verified}
            self._audit.record(tx, actor.name, f"approval.{decision.value}", subject, details)
            report = self._check(tx, version, environment)
            if decision is models.Decision.APPROVE and report.passed and version.status != lifecycle.approved(environment):
                status = lifecycle.transition(version.status, lifecycle.Event.APPROVE, environment)
                tx.set_status(name, number, status)
                self._audit.record(tx, actor.name, "version.approve", subject,
                                   {"from": version.status, "to": status, "policy": report.policy_version})
            self._notify(tx, f"approval.{decision.value}", {
                "model": name, "version": number, "environment": environment, "actor": actor.name,
                "comment": comment, "id": record.id, "gates_passed": report.passed})
        return report

    def _notify(self, tx: ports.WriteTransaction, event: str, payload: dict[str, Any]) -> None:
        if self._webhooks:
            body = {"event": event, "time": self._clock.now().isoformat(), **payload}
            tx.enqueue_webhook(event, orjson.dumps(body).decode(), time=self._clock.now())


def _allowed(actor: access.Actor, decision: models.Decision, version: models.ModelVersion, model: models.Model,
             state: gates.ApprovalState, rules: policy.Gates | None, environment: str) -> None:
    """Separation of duties and the workflow's order; raises naming the rule."""
    ref = f"{version.model}@{version.version}"
    if rules is None:
        raise errors.PolicyViolation(f"{ref} has risk tier unacceptable, which never deploys: no approval applies")
    if version.status in _FINAL:
        raise errors.Conflict(f"{ref} is {version.status}; it can no longer be approved")
    if decision is models.Decision.REQUEST:
        if version.status == lifecycle.REGISTERED:
            raise errors.Conflict(f"{ref} is still registered: validate it first "
                                  f"(`threadline models transition {ref} validate`)")
        return
    if decision is not models.Decision.WITHDRAW and actor.name == version.created_by:
        raise errors.PolicyViolation(f"separation of duties: {actor.name} registered {ref} and can never "
                                     f"{decision.value} it; ask another approver")
    if decision is models.Decision.APPROVE:
        if not state.requested:
            raise errors.Conflict(f"nobody has requested approval of {ref} for {environment}"
                                  + (f" since {state.rejected_by} rejected it" if state.rejected_by else "")
                                  + f": `threadline approvals request {ref} --env {environment}` first")
        if actor.name in state.approvers:
            raise errors.PolicyViolation(f"separation of duties: {actor.name} has already approved {ref} for "
                                         f"{environment}; a further approval must come from someone else")
        if rules.mfa and not actor.mfa_verified:
            raise errors.PolicyViolation(f"the policy requires MFA for approving {model.risk_tier.value}-risk "
                                         f"models in {environment}: send a fresh TOTP code (--otp)")
    if decision is models.Decision.REJECT and not state.requested:
        raise errors.Conflict(f"there is no open request for {ref} in {environment} to reject")
    if decision is models.Decision.WITHDRAW and actor.name not in state.approvers:
        raise errors.Conflict(f"{actor.name} has no current approval of {ref} for {environment} to withdraw")


def _require_mfa(actor: access.Actor, what: str) -> None:
    if not actor.mfa_verified:
        raise errors.PolicyViolation(f"{what} needs a fresh TOTP code: send it with --otp "
                                     "(enrol first with `threadline mfa enroll`)")


def _card(tx: ports.ReadTransaction, version: models.ModelVersion) -> tuple[cards.ModelCard, int]:
    revisions = tx.card_revisions(version.model, version.version)
    if revisions:
        return cards.parse_card(revisions[-1].card), revisions[-1].revision
    return cards.parse_card(version.card), 1
