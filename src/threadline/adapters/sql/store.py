"""The metadata store over SQLAlchemy Core: SQLite or PostgreSQL, one code path.

Every write transaction first locks the audit chain head (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL). That one lock makes writers take turns, which
keeps the audit chain linear and version numbers gap-free across threads and processes,
and it is cheap because registry writes are rare next to reads.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from threadline.adapters.sql import engine as engines
from threadline.adapters.sql import migrate, records
from threadline.adapters.sql import schema as t
from threadline.domain import errors, hashchain, models


# Hot-path statements are built once: composing a SQLAlchemy expression per call costs more
# than running the query on SQLite.
# Every version column but the (large) profile, which has its own read.
_VERSION_COLUMNS = (*(c for c in t.model_versions.c if c.name != "profile"),
                    t.model_versions.c.profile.is_not(None).label("has_profile"))
_VERSION = (sa.select(*_VERSION_COLUMNS).join(t.models)
            .where(t.models.c.name == sa.bindparam("name"),
                   t.model_versions.c.version == sa.bindparam("version")))
_VERSION_BY_ALIAS = (sa.select(*_VERSION_COLUMNS)
                     .join(t.models, t.models.c.id == t.model_versions.c.model_id)
                     .join(t.aliases, (t.aliases.c.model_id == t.model_versions.c.model_id)
                           & (t.aliases.c.version == t.model_versions.c.version))
                     .where(t.models.c.name == sa.bindparam("name"), t.aliases.c.alias == sa.bindparam("alias")))
_USER_BY_TOKEN = (sa.select(t.tokens, t.users.c.name.label("user_name"), t.users.c.roles, t.users.c.teams,
                            t.users.c.disabled, t.users.c.created_at.label("user_created_at"))
                  .join(t.users).where(t.tokens.c.token_hash == sa.bindparam("digest")))


class SqlReadTransaction:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection

    def _model_id(self, name: str) -> int:
        model_id = self._c.execute(sa.select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if model_id is None:
            raise errors.NotFound(f"model {name!r} not found")
        return int(model_id)

    def get_model(self, name: str) -> models.Model:
        row = self._c.execute(sa.select(t.models).where(t.models.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f"model {name!r} not found")
        return records.model(row)

    def list_models(self, *, query: str | None, owner: str | None, limit: int,
                    after: str | None) -> list[models.Model]:
        stmt = sa.select(t.models).order_by(t.models.c.name).limit(limit)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(sa.or_(t.models.c.name.like(pattern, escape="\\"),
                                     t.models.c.description.like(pattern, escape="\\")))
        if owner:
            stmt = stmt.where(t.models.c.owner == owner)
        if after:
            stmt = stmt.where(t.models.c.name > after)
        return [records.model(row) for row in self._c.execute(stmt)]

    def get_version(self, name: str, version: int) -> models.ModelVersion:
        row = self._c.execute(_VERSION, {"name": name, "version": version}).first()
        if row is None:
            self._model_id(name)
            raise errors.NotFound(f"model {name!r} has no version {version}")
        return records.version(row, name)

    def get_version_by_alias(self, name: str, alias: str) -> models.ModelVersion:
        row = self._c.execute(_VERSION_BY_ALIAS, {"name": name, "alias": alias}).first()
        if row is None:
            self.resolve_alias(name, alias)  # raises NotFound naming the model or the alias
            raise errors.NotFound(f"model {name!r} alias {alias!r} points at a missing version")
        return records.version(row, name)

    def get_profile(self, name: str, version: int) -> Mapping[str, Any] | None:
        stmt = (sa.select(t.model_versions.c.profile).join(t.models)
                .where(t.models.c.name == name, t.model_versions.c.version == version))
        row = self._c.execute(stmt).first()
        if row is None:
            self.get_version(name, version)  # raises NotFound naming the model or version
        return None if row is None else row.profile

    def list_versions(self, name: str, *, limit: int, after: int | None) -> list[models.ModelVersion]:
        model_id = self._model_id(name)
        stmt = (sa.select(*_VERSION_COLUMNS).where(t.model_versions.c.model_id == model_id)
                .order_by(t.model_versions.c.version).limit(limit))
        if after is not None:
            stmt = stmt.where(t.model_versions.c.version > after)
        return [records.version(row, name) for row in self._c.execute(stmt)]

    def latest_version(self, name: str) -> int | None:
        model_id = self._model_id(name)
        stmt = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.model_id == model_id)
        latest = self._c.execute(stmt).scalar()
        return None if latest is None else int(latest)

    def resolve_alias(self, name: str, alias: str) -> int:
        stmt = (sa.select(t.aliases.c.version).join(t.models)
                .where(t.models.c.name == name, t.aliases.c.alias == alias))
        version = self._c.execute(stmt).scalar()
        if version is None:
            self._model_id(name)
            raise errors.NotFound(f"model {name!r} has no alias {alias!r}")
        return int(version)

    def aliases(self, name: str) -> dict[str, int]:
        model_id = self._model_id(name)
        stmt = sa.select(t.aliases.c.alias, t.aliases.c.version).where(t.aliases.c.model_id == model_id)
        return {row.alias: row.version for row in self._c.execute(stmt.order_by(t.aliases.c.alias))}

    def audit_head(self) -> tuple[int, str] | None:
        row = self._c.execute(sa.select(t.audit_head.c.seq, t.audit_head.c.hash)
                              .where(t.audit_head.c.id == 1)).first()
        return None if row is None or row.seq == 0 else (int(row.seq), row.hash)

    def audit_entries(self, *, after: int, limit: int, actor: str | None = None, action: str | None = None,
                      object_prefix: str | None = None, before: int | None = None,
                      newest_first: bool = False) -> list[hashchain.AuditEntry]:
        seq = t.audit_entries.c.seq
        filters = _audit_filters(actor, action, object_prefix) + ([seq < before] if before is not None else [])
        stmt = (sa.select(t.audit_entries).where(seq > after, *filters)
                .order_by(seq.desc() if newest_first else seq).limit(limit))
        return [records.audit_entry(row) for row in self._c.execute(stmt)]

    def count_audit_entries(self, *, actor: str | None = None, action: str | None = None,
                            object_prefix: str | None = None) -> int:
        stmt = sa.select(sa.func.count()).select_from(t.audit_entries).where(
            *_audit_filters(actor, action, object_prefix))
        return int(self._c.execute(stmt).scalar() or 0)

    def audit_checkpoints(self) -> list[hashchain.Checkpoint]:
        stmt = sa.select(t.audit_checkpoints).order_by(t.audit_checkpoints.c.seq)
        return [records.checkpoint(row) for row in self._c.execute(stmt)]

    def user_by_token(self, token_digest: str) -> tuple[models.User, models.Token] | None:
        row = self._c.execute(_USER_BY_TOKEN, {"digest": token_digest}).first()
        if row is None:
            return None
        user = models.User(id=row.user_id, name=row.user_name, roles=tuple(row.roles),
                           disabled=bool(row.disabled), created_at=records.utc(row.user_created_at),
                           teams=tuple(row.teams or ()))
        return user, records.token(row)

    def user_by_name(self, name: str) -> models.User:
        row = self._c.execute(sa.select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f"user {name!r} not found")
        return records.user(row)

    def count_users(self) -> int:
        return int(self._c.execute(sa.select(sa.func.count()).select_from(t.users)).scalar() or 0)

    def list_users(self) -> list[models.User]:
        return [records.user(row) for row in self._c.execute(sa.select(t.users).order_by(t.users.c.name))]

    def list_tokens(self, user_id: int | None) -> list[tuple[str, models.Token]]:
        stmt = (sa.select(t.tokens, t.users.c.name.label("user_name")).join(t.users)
                .order_by(t.tokens.c.id))
        if user_id is not None:
            stmt = stmt.where(t.tokens.c.user_id == user_id)
        return [(row.user_name, records.token(row)) for row in self._c.execute(stmt)]

    def get_token(self, token_id: int) -> tuple[models.User, models.Token]:
        row = self._c.execute(sa.select(t.tokens).where(t.tokens.c.id == token_id)).first()
        if row is None:
            raise errors.NotFound(f"token {token_id} not found")
        user = records.user(self._c.execute(sa.select(t.users).where(t.users.c.id == row.user_id)).one())
        return user, records.token(row)

    def get_mfa(self, user_id: int) -> models.MfaRecord | None:
        row = self._c.execute(sa.select(t.user_mfa).where(t.user_mfa.c.user_id == user_id)).first()
        if row is None:
            return None
        return models.MfaRecord(user_id=row.user_id, secret=bytes(row.secret),
                                confirmed_at=records.utc_or_none(row.confirmed_at), last_step=int(row.last_step))

    def latest_policy(self) -> models.PolicyRecord | None:
        row = self._c.execute(sa.select(t.policies).order_by(t.policies.c.version.desc()).limit(1)).first()
        return None if row is None else records.policy(row)

    def list_policies(self) -> list[models.PolicyRecord]:
        return [records.policy(row) for row in self._c.execute(sa.select(t.policies).order_by(t.policies.c.version))]

    def approvals(self, name: str, version: int | None = None) -> list[models.Approval]:
        stmt = (sa.select(t.approvals).where(t.approvals.c.model_id == self._model_id(name))
                .order_by(t.approvals.c.id))
        if version is not None:
            stmt = stmt.where(t.approvals.c.version == version)
        return [records.approval(row, name) for row in self._c.execute(stmt)]

    def card_revisions(self, name: str, version: int) -> list[models.CardRevision]:
        stmt = (sa.select(t.model_cards).where(t.model_cards.c.model_id == self._model_id(name),
                                               t.model_cards.c.version == version)
                .order_by(t.model_cards.c.revision))
        return [records.card_revision(row, name) for row in self._c.execute(stmt)]

    def attestations(self, deployment: str, environment: str) -> list[models.Attestation]:
        stmt = (sa.select(t.attestations).where(t.attestations.c.deployment == deployment,
                                                t.attestations.c.environment == environment)
                .order_by(t.attestations.c.id))
        return [records.attestation(row) for row in self._c.execute(stmt)]

    def deployments(self, environment: str | None = None) -> list[models.DeploymentRecord]:
        stmt = sa.select(t.deployments).order_by(t.deployments.c.environment, t.deployments.c.name)
        if environment is not None:
            stmt = stmt.where(t.deployments.c.environment == environment)
        return [records.deployment(row) for row in self._c.execute(stmt)]

    def get_deployment(self, name: str, environment: str) -> models.DeploymentRecord:
        row = self._c.execute(sa.select(t.deployments).where(t.deployments.c.name == name,
                                                             t.deployments.c.environment == environment)).first()
        if row is None:
            raise errors.NotFound(f"no deployment {name!r} in environment {environment!r}")
        return records.deployment(row)

    def deployment_history(self, name: str, environment: str, *, limit: int) -> list[models.HistoryRecord]:
        stmt = (sa.select(t.deployment_history)
                .where(t.deployment_history.c.name == name, t.deployment_history.c.environment == environment)
                .order_by(t.deployment_history.c.id.desc()).limit(limit))
        return [records.history(row) for row in self._c.execute(stmt)]

    def source_commit(self, source: str) -> str | None:
        return self._c.execute(sa.select(t.gitops_sources.c.commit).where(t.gitops_sources.c.source == source)).scalar()

    def due_webhooks(self, now: datetime, limit: int) -> list[models.WebhookMessage]:
        stmt = (sa.select(t.webhook_outbox).where(t.webhook_outbox.c.delivered_at.is_(None),
                                                  t.webhook_outbox.c.next_attempt_at <= now)
                .order_by(t.webhook_outbox.c.id).limit(limit))
        return [models.WebhookMessage(id=row.id, event=row.event, payload=row.payload, attempts=row.attempts,
                                      url=row.url, idempotency_key=row.idempotency_key)
                for row in self._c.execute(stmt)]

    def feedback(self, deployment: str, start: datetime, end: datetime) -> list[models.Feedback]:
        c = t.feedback.c
        stmt = sa.select(t.feedback).where(c.deployment == deployment, c.prediction_time >= start,
                                           c.prediction_time < end)
        return [records.feedback(row) for row in self._c.execute(stmt)]

    def get_bundle(self, bundle_id: str) -> models.BundleRecord:
        row = self._c.execute(sa.select(t.bundles).where(t.bundles.c.id == bundle_id)).first()
        if row is None:
            raise errors.NotFound(f"no context bundle {bundle_id!r}")
        return records.bundle(row)

    def review_tasks(self, *, queue: str | None, status: str | None, limit: int) -> list[models.ReviewTask]:
        c = t.review_tasks.c
        stmt = sa.select(t.review_tasks).order_by(c.created_at, c.bundle_id).limit(limit)
        if queue is not None:
            stmt = stmt.where(c.queue == queue)
        if status is not None:
            stmt = stmt.where(c.status == status)
        return [records.review_task(row) for row in self._c.execute(stmt)]

    def count_review_tasks(self, *, queue: str | None, status: str | None) -> int:
        c = t.review_tasks.c
        stmt = sa.select(sa.func.count()).select_from(t.review_tasks)
        if queue is not None:
            stmt = stmt.where(c.queue == queue)
        if status is not None:
            stmt = stmt.where(c.status == status)
        return int(self._c.execute(stmt).scalar_one())

    def get_review_task(self, bundle_id: str) -> models.ReviewTask:
        row = self._c.execute(sa.select(t.review_tasks).where(t.review_tasks.c.bundle_id == bundle_id)).first()
        if row is None:
            raise errors.NotFound(f"no review task for bundle {bundle_id!r}")
        return records.review_task(row)

    def monitor_states(self, deployment: str, environment: str) -> list[models.MonitorState]:
        c = t.monitor_state.c
        stmt = sa.select(t.monitor_state).where(c.deployment == deployment, c.environment == environment)
        return [records.monitor_state(row) for row in self._c.execute(stmt)]

    def monitor_events(self, *, deployment: str | None, environment: str | None, event: str | None = None,
                       limit: int) -> list[models.MonitorEvent]:
        """Newest first."""
        c = t.monitor_events.c
        stmt = sa.select(t.monitor_events).order_by(c.id.desc()).limit(limit)
        for column, value in ((c.deployment, deployment), (c.environment, environment), (c.event, event)):
            if value is not None:
                stmt = stmt.where(column == value)
        return [records.monitor_event(row) for row in self._c.execute(stmt)]

    def window_profile(self, deployment: str, kind: str, start: datetime,
                       end: datetime) -> Mapping[str, Any] | None:
        c = t.window_profiles.c
        row = self._c.execute(sa.select(c.body).where(c.deployment == deployment, c.kind == kind, c.start == start,
                                                      c.end == end)).first()
        return None if row is None else row.body

    def utilization(self, deployment: str, environment: str, start: datetime,
                    end: datetime) -> list[models.MinuteSample]:
        c = t.utilization.c
        stmt = (sa.select(t.utilization).where(c.deployment == deployment, c.environment == environment,
                                               c.minute >= start, c.minute < end).order_by(c.minute, c.replica))
        return [records.minute_sample(row) for row in self._c.execute(stmt)]

    def utilization_span(self) -> list[tuple[str, str, datetime, datetime]]:
        """Per (deployment, environment): the first and last minute sampled."""
        c = t.utilization.c
        stmt = sa.select(c.deployment, c.environment, sa.func.min(c.minute), sa.func.max(c.minute)).group_by(
            c.deployment, c.environment)
        return [(row[0], row[1], records.utc(row[2]), records.utc(row[3])) for row in self._c.execute(stmt)]

    def trusted_keys(self) -> list[models.TrustedKey]:
        return [records.trusted_key(row) for row in
                self._c.execute(sa.select(t.trusted_keys).order_by(t.trusted_keys.c.name))]


def _audit_filters(actor: str | None, action: str | None, object_prefix: str | None) -> list[Any]:
    """``action`` ending in ``.`` matches its family (``version.``), else only itself; an object
    matches itself and everything below it."""
    found: list[Any] = []
    if actor is not None:
        found.append(t.audit_entries.c.actor == actor)
    if action is not None:
        found.append(t.audit_entries.c.action.startswith(action, autoescape=True)
                     if action.endswith(".") else t.audit_entries.c.action == action)
    if object_prefix is not None:
        found.append(sa.or_(t.audit_entries.c.object == object_prefix,
                            t.audit_entries.c.object.startswith(object_prefix + "/", autoescape=True)))
    return found


class SqlWriteTransaction(SqlReadTransaction):
    def add_model(self, model: models.Model) -> None:
        try:
            with self._c.begin_nested():
                self._c.execute(t.models.insert().values(
                    name=model.name, owner=model.owner, risk_tier=model.risk_tier.value,
                    description=model.description, created_by=model.created_by,
                    created_at=model.created_at))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"model {model.name!r} already exists") from exc

    def add_version(self, version: models.ModelVersion, profile: Mapping[str, Any] | None) -> None:
        model_id = self._model_id(version.model)
        try:
            with self._c.begin_nested():
                self._c.execute(t.model_versions.insert().values(
                    records.version_values(version, model_id, profile)))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"model {version.model!r} already has version {version.version}") from exc

    def set_status(self, name: str, version: int, status: str) -> None:
        model_id = self._model_id(name)
        result = self._c.execute(t.model_versions.update()
                                 .where(t.model_versions.c.model_id == model_id,
                                        t.model_versions.c.version == version)
                                 .values(status=status))
        if result.rowcount == 0:
            raise errors.NotFound(f"model {name!r} has no version {version}")

    def set_alias(self, name: str, alias: str, version: int, *, actor: str, time: datetime) -> int | None:
        model_id = self._model_id(name)
        key = (t.aliases.c.model_id == model_id) & (t.aliases.c.alias == alias)
        previous = self._c.execute(sa.select(t.aliases.c.version).where(key)).scalar()
        if previous is None:
            self._c.execute(t.aliases.insert().values(model_id=model_id, alias=alias, version=version,
                                                      updated_by=actor, updated_at=time))
        else:
            self._c.execute(t.aliases.update().where(key).values(version=version, updated_by=actor,
                                                                 updated_at=time))
        return None if previous is None else int(previous)

    def delete_alias(self, name: str, alias: str) -> int:
        previous = self.resolve_alias(name, alias)
        model_id = self._model_id(name)
        self._c.execute(t.aliases.delete().where(t.aliases.c.model_id == model_id, t.aliases.c.alias == alias))
        return previous

    def append_audit(self, entry: hashchain.AuditEntry) -> None:
        self._c.execute(t.audit_entries.insert().values(records.audit_values(entry)))
        self._c.execute(t.audit_head.update().where(t.audit_head.c.id == 1)
                        .values(seq=entry.seq, hash=entry.hash))

    def add_checkpoint(self, checkpoint: hashchain.Checkpoint) -> None:
        self._c.execute(t.audit_checkpoints.insert().values(
            seq=checkpoint.seq, hash=checkpoint.hash, time=checkpoint.time, key_id=checkpoint.key_id,
            signature=checkpoint.signature))

    def add_user(self, name: str, roles: tuple[str, ...], *, time: datetime,
                 teams: tuple[str, ...] = ()) -> models.User:
        try:
            with self._c.begin_nested():
                result = self._c.execute(t.users.insert().values(
                    name=name, roles=list(roles), teams=list(teams), disabled=False, created_at=time))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"user {name!r} already exists") from exc
        return models.User(id=int(result.inserted_primary_key[0]), name=name, roles=roles,
                           disabled=False, created_at=time, teams=teams)

    def update_user(self, name: str, *, roles: tuple[str, ...] | None = None, teams: tuple[str, ...] | None = None,
                    disabled: bool | None = None) -> models.User:
        values: dict[str, Any] = {}
        if roles is not None:
            values["roles"] = list(roles)
        if teams is not None:
            values["teams"] = list(teams)
        if disabled is not None:
            values["disabled"] = disabled
        if values:
            self._c.execute(t.users.update().where(t.users.c.name == name).values(**values))
        return self.user_by_name(name)

    def revoke_token(self, token_id: int, *, time: datetime) -> None:
        self._c.execute(t.tokens.update().where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
                        .values(revoked_at=time))

    def put_mfa(self, record: models.MfaRecord) -> None:
        self._c.execute(t.user_mfa.delete().where(t.user_mfa.c.user_id == record.user_id))
        self._c.execute(t.user_mfa.insert().values(user_id=record.user_id, secret=record.secret,
                                                   confirmed_at=record.confirmed_at, last_step=record.last_step))

    def add_policy(self, record: models.PolicyRecord) -> None:
        try:
            with self._c.begin_nested():
                self._c.execute(t.policies.insert().values(
                    version=record.version, document=record.document, digest=record.digest,
                    created_by=record.created_by, created_at=record.created_at))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"policy version {record.version} already exists") from exc

    def add_approval(self, approval: models.Approval) -> models.Approval:
        result = self._c.execute(t.approvals.insert().values(
            model_id=self._model_id(approval.model), version=approval.version,
            environment=approval.environment, decision=approval.decision.value, actor=approval.actor,
            comment=approval.comment, mfa=approval.mfa, time=approval.time))
        return dataclasses.replace(approval, id=int(result.inserted_primary_key[0]))

    def add_card_revision(self, revision: models.CardRevision) -> None:
        try:
            with self._c.begin_nested():
                self._c.execute(t.model_cards.insert().values(
                    model_id=self._model_id(revision.model), version=revision.version,
                    revision=revision.revision, card=dict(revision.card), created_by=revision.created_by,
                    created_at=revision.created_at))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"{revision.model}@{revision.version} already has card revision "
                                  f"{revision.revision}") from exc

    def add_attestation(self, attestation: models.Attestation) -> models.Attestation:
        result = self._c.execute(t.attestations.insert().values(
            deployment=attestation.deployment, environment=attestation.environment, item=attestation.item,
            actor=attestation.actor, comment=attestation.comment, time=attestation.time,
            key_id=attestation.key_id, signature=attestation.signature))
        return dataclasses.replace(attestation, id=int(result.inserted_primary_key[0]))

    def put_deployment(self, record: models.DeploymentRecord) -> None:
        key = (t.deployments.c.name == record.name) & (t.deployments.c.environment == record.environment)
        values = {"spec": dict(record.spec), "commit": record.commit, "status": record.status, "reason": record.reason,
                  "differences": list(record.differences), "state": dict(record.state),
                  "endpoints": list(record.endpoints), "updated_at": record.updated_at}
        if self._c.execute(t.deployments.update().where(key).values(**values)).rowcount == 0:
            self._c.execute(t.deployments.insert().values(name=record.name, environment=record.environment, **values))

    def delete_deployment(self, name: str, environment: str) -> None:
        self._c.execute(t.deployments.delete().where(t.deployments.c.name == name,
                                                     t.deployments.c.environment == environment))

    def add_history(self, record: models.HistoryRecord) -> None:
        self._c.execute(t.deployment_history.insert().values(
            name=record.name, environment=record.environment, commit=record.commit, action=record.action,
            outcome=record.outcome, workload=None if record.workload is None else dict(record.workload),
            reason=record.reason, evidence=dict(record.evidence), time=record.time))

    def set_source_commit(self, source: str, commit: str, *, time: datetime) -> None:
        key = t.gitops_sources.c.source == source
        if self._c.execute(t.gitops_sources.update().where(key).values(commit=commit, updated_at=time)).rowcount == 0:
            self._c.execute(t.gitops_sources.insert().values(source=source, commit=commit, updated_at=time))

    def enqueue_webhook(self, event: str, payload: str, *, time: datetime, url: str | None = None,
                        idempotency_key: str | None = None) -> None:
        self._c.execute(t.webhook_outbox.insert().values(event=event, payload=payload, created_at=time,
                                                         attempts=0, next_attempt_at=time, url=url,
                                                         idempotency_key=idempotency_key))

    def put_feedback(self, item: models.Feedback) -> None:
        c = t.feedback.c
        values = {"prediction_time": item.prediction_time, "label": item.label, "source": item.source,
                  "actor": item.actor, "time": item.time}
        key = (c.deployment == item.deployment) & (c.prediction_id == item.prediction_id)
        if self._c.execute(t.feedback.update().where(key).values(**values)).rowcount == 0:
            self._c.execute(t.feedback.insert().values(deployment=item.deployment, prediction_id=item.prediction_id,
                                                       **values))

    def add_bundle(self, record: models.BundleRecord) -> bool:
        """Store a bundle; False when one with this id exists already (same digest: a retried upload)."""
        existing = self._c.execute(sa.select(t.bundles.c.digest).where(t.bundles.c.id == record.id)).first()
        if existing is not None:
            if existing.digest != record.digest:
                raise errors.Conflict(f"a different bundle {record.id!r} is stored already")
            return False
        self._c.execute(t.bundles.insert().values(**dataclasses.asdict(record)))
        return True

    def put_review_task(self, task: models.ReviewTask) -> None:
        values = dataclasses.asdict(task)
        key = t.review_tasks.c.bundle_id == values.pop("bundle_id")
        if self._c.execute(t.review_tasks.update().where(key).values(**values)).rowcount == 0:
            self._c.execute(t.review_tasks.insert().values(bundle_id=task.bundle_id, **values))

    def put_monitor_state(self, state: models.MonitorState) -> None:
        c = t.monitor_state.c
        key = (c.deployment == state.deployment) & (c.environment == state.environment) & (c.rule == state.rule)
        values = {"status": state.status, "since": state.since, "consecutive": state.consecutive,
                  "last_window_end": state.last_window_end}
        if self._c.execute(t.monitor_state.update().where(key).values(**values)).rowcount == 0:
            self._c.execute(t.monitor_state.insert().values(deployment=state.deployment,
                                                            environment=state.environment, rule=state.rule,
                                                            **values))

    def add_monitor_event(self, event: models.MonitorEvent) -> None:
        values = dataclasses.asdict(event)
        values.pop("id")
        values["details"] = dict(event.details)
        self._c.execute(t.monitor_events.insert().values(**values))

    def put_window_profile(self, deployment: str, kind: str, start: datetime, end: datetime,
                           body: Mapping[str, Any], *, time: datetime) -> None:
        c = t.window_profiles.c
        key = (c.deployment == deployment) & (c.kind == kind) & (c.start == start) & (c.end == end)
        if self._c.execute(t.window_profiles.update().where(key).values(body=dict(body),
                                                                         computed_at=time)).rowcount == 0:
            self._c.execute(t.window_profiles.insert().values(deployment=deployment, kind=kind, start=start,
                                                              end=end, body=dict(body), computed_at=time))

    def forget_window_profiles(self, deployment: str, kind: str, first: datetime, last: datetime) -> None:
        """Drop the kept profiles of every window that overlaps [first, last]."""
        c = t.window_profiles.c
        self._c.execute(t.window_profiles.delete().where(c.deployment == deployment, c.kind == kind,
                                                         c.start <= last, c.end > first))

    def put_utilization(self, deployment: str, environment: str, samples: list[models.MinuteSample]) -> None:
        c = t.utilization.c
        for sample in samples:
            values = dataclasses.asdict(sample)
            key = ((c.deployment == deployment) & (c.environment == environment) & (c.replica == sample.replica)
                   & (c.minute == sample.minute))
            self._c.execute(t.utilization.delete().where(key))
            self._c.execute(t.utilization.insert().values(deployment=deployment, environment=environment, **values))

    def prune_utilization(self, before: datetime) -> int:
        return int(self._c.execute(t.utilization.delete().where(t.utilization.c.minute < before)).rowcount)

    def add_trusted_key(self, key: models.TrustedKey) -> None:
        if self._c.execute(sa.select(t.trusted_keys.c.key_id)
                           .where(t.trusted_keys.c.key_id == key.key_id)).first() is not None:
            raise errors.Conflict(f"key {key.key_id} is trusted already")
        self._c.execute(t.trusted_keys.insert().values(**dataclasses.asdict(key)))

    def webhook_attempted(self, message_id: int, *, attempts: int, delivered_at: datetime | None,
                          next_attempt_at: datetime, error: str | None) -> None:
        self._c.execute(t.webhook_outbox.update().where(t.webhook_outbox.c.id == message_id).values(
            attempts=attempts, delivered_at=delivered_at, next_attempt_at=next_attempt_at, last_error=error))

    def add_token(self, user_id: int, name: str, token_digest: str, prefix: str, *,
                  time: datetime, expires_at: datetime | None) -> models.Token:
        result = self._c.execute(t.tokens.insert().values(
            user_id=user_id, name=name, token_hash=token_digest, prefix=prefix, created_at=time,
            expires_at=expires_at, revoked_at=None))
        return models.Token(id=int(result.inserted_primary_key[0]), user_id=user_id, name=name,
                            prefix=prefix, created_at=time, expires_at=expires_at, revoked_at=None)


class SqlMetadataStore:
    """MetadataStore over one SQLAlchemy engine; migrations run at construction."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = engines.create(url)
        self._postgres = self.engine.dialect.name == "postgresql"
        try:
            if migrate_schema:
                migrate.upgrade(self.engine)
        except sa_exc.OperationalError as exc:
            self.engine.dispose()
            raise errors.ConfigurationError(
                f"cannot reach the metadata database {engines.redact(url)}: {_first_line(exc)}") from exc

    @contextmanager
    def reading(self) -> Iterator[SqlReadTransaction]:
        # A snapshot: a reader walking the audit chain must not see a writer's later rows.
        options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"} if self._postgres else {}
        with _translated(), self.engine.connect().execution_options(**options) as connection:
            with connection.begin():
                yield SqlReadTransaction(connection)

    @contextmanager
    def writing(self) -> Iterator[SqlWriteTransaction]:
        options: dict[str, Any] = {engines.WRITE_OPTION: True}
        with _translated(), self.engine.connect().execution_options(**options) as connection:
            with connection.begin():
                # Serialise writers on the chain head (a no-op clause on SQLite, which
                # already holds the write lock from BEGIN IMMEDIATE).
                connection.execute(sa.select(t.audit_head.c.seq).where(t.audit_head.c.id == 1)
                                   .with_for_update())
                yield SqlWriteTransaction(connection)

    def close(self) -> None:
        self.engine.dispose()


_OUT_OF_RANGE = f"a number is out of range: identifiers and versions are at most {2**63 - 1}"


@contextmanager
def _translated() -> Iterator[None]:
    """Database failures as domain errors: an unreachable database is a configuration problem,
    and a number the database cannot hold (SQLite: OverflowError, PostgreSQL: DataError) is bad
    input, never a 500."""
    try:
        yield
    except sa_exc.OperationalError as exc:
        raise errors.ConfigurationError(f"metadata database error: {_first_line(exc)}") from exc
    except (OverflowError, sa_exc.DataError) as exc:
        raise errors.InvalidInput(_OUT_OF_RANGE) from exc
    except sa_exc.StatementError as exc:
        if isinstance(exc.orig, OverflowError):
            raise errors.InvalidInput(_OUT_OF_RANGE) from exc
        raise


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return text.strip().splitlines()[0]
