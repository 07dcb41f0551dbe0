"""Conversions between table rows and domain values, kept apart from the queries."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
import sqlalchemy as sa

from threadline.domain import hashchain, models


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def model(row: sa.Row[Any]) -> models.Model:
    return models.Model(
        name=row.name, owner=row.owner, risk_tier=models.RiskTier(row.risk_tier),
        description=row.description, created_by=row.created_by, created_at=utc(row.created_at),
    )


def version(row: sa.Row[Any], model_name: str) -> models.ModelVersion:
    return models.ModelVersion(
        model=model_name, version=row.version, artifact_digest=row.artifact_digest,
        artifact_size=row.artifact_size, flavor=models.Flavor(row.flavor),
        artifact_format=models.ArtifactFormat(row.artifact_format), trusted=bool(row.trusted),
        signature=models.signature_from_json(row.signature), has_profile=bool(row.has_profile),
        metrics=row.metrics,
        card=row.card, lineage=models.lineage_from_json(row.lineage), status=row.status,
        description=row.description, created_by=row.created_by, created_at=utc(row.created_at),
    )


def version_values(v: models.ModelVersion, model_id: int, profile: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        "model_id": model_id, "version": v.version, "artifact_digest": v.artifact_digest,
        "artifact_size": v.artifact_size, "flavor": v.flavor.value,
        "artifact_format": v.artifact_format.value, "trusted": v.trusted,
        "signature": models.signature_to_json(v.signature), "profile": None if profile is None else dict(profile), "metrics": dict(v.metrics),
        "card": dict(v.card), "lineage": models.lineage_to_json(v.lineage), "status": v.status,
        "description": v.description, "created_by": v.created_by, "created_at": v.created_at,
    }


def user(row: sa.Row[Any]) -> models.User:
    return models.User(id=row.id, name=row.name, roles=tuple(row.roles), disabled=bool(row.disabled),
                       created_at=utc(row.created_at), teams=tuple(row.teams or ()))


def token(row: sa.Row[Any]) -> models.Token:
    return models.Token(
        id=row.id, user_id=row.user_id, name=row.name, prefix=row.prefix,
        created_at=utc(row.created_at), expires_at=utc_or_none(row.expires_at),
        revoked_at=utc_or_none(row.revoked_at),
    )


def audit_entry(row: sa.Row[Any]) -> hashchain.AuditEntry:
    return hashchain.AuditEntry(
        seq=row.seq, time=utc(row.time), actor=row.actor, action=row.action, object=row.object,
        details=orjson.loads(row.details), prev_hash=row.prev_hash, hash=row.hash,
    )


def audit_values(entry: hashchain.AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq, "time": entry.time, "actor": entry.actor, "action": entry.action,
        "object": entry.object, "details": hashchain.canonical_json(entry.details),
        "prev_hash": entry.prev_hash, "hash": entry.hash,
    }


def checkpoint(row: sa.Row[Any]) -> hashchain.Checkpoint:
    return hashchain.Checkpoint(seq=row.seq, hash=row.hash, time=utc(row.time), key_id=row.key_id,
                                signature=bytes(row.signature))


def approval(row: sa.Row[Any], model_name: str) -> models.Approval:
    return models.Approval(
        model=model_name, version=row.version, environment=row.environment,
        decision=models.Decision(row.decision), actor=row.actor, comment=row.comment, mfa=bool(row.mfa),
        time=utc(row.time), id=row.id)


def card_revision(row: sa.Row[Any], model_name: str) -> models.CardRevision:
    return models.CardRevision(model=model_name, version=row.version, revision=row.revision, card=row.card,
                               created_by=row.created_by, created_at=utc(row.created_at))


def policy(row: sa.Row[Any]) -> models.PolicyRecord:
    return models.PolicyRecord(version=row.version, document=row.document, digest=row.digest,
                               created_by=row.created_by, created_at=utc(row.created_at))


def attestation(row: sa.Row[Any]) -> models.Attestation:
    return models.Attestation(
        deployment=row.deployment, environment=row.environment, item=row.item, actor=row.actor,
        comment=row.comment, time=utc(row.time), key_id=row.key_id, signature=bytes(row.signature), id=row.id)


def deployment(row: sa.Row[Any]) -> models.DeploymentRecord:
    return models.DeploymentRecord(
        name=row.name, environment=row.environment, spec=row.spec, commit=row.commit, status=row.status,
        reason=row.reason, differences=tuple(row.differences), state=row.state, updated_at=utc(row.updated_at),
        endpoints=tuple(row.endpoints))


def history(row: sa.Row[Any]) -> models.HistoryRecord:
    return models.HistoryRecord(
        name=row.name, environment=row.environment, commit=row.commit, action=row.action, outcome=row.outcome,
        workload=row.workload, reason=row.reason, evidence=row.evidence, time=utc(row.time), id=row.id)


def feedback(row: sa.Row[Any]) -> models.Feedback:
    return models.Feedback(deployment=row.deployment, prediction_id=row.prediction_id,
                           prediction_time=utc(row.prediction_time), label=row.label, source=row.source,
                           actor=row.actor, time=utc(row.time))


def bundle(row: sa.Row[Any]) -> models.BundleRecord:
    return models.BundleRecord(
        id=row.id, deployment=row.deployment, queue=row.queue, model=row.model, version=row.version,
        created=utc(row.created), reason=row.reason, digest=row.digest, key_id=row.key_id,
        signature=row.signature, body=row.body, origin=row.origin, received_at=utc(row.received_at))


def review_task(row: sa.Row[Any]) -> models.ReviewTask:
    return models.ReviewTask(
        bundle_id=row.bundle_id, queue=row.queue, status=row.status, assignee=row.assignee,
        claimed_at=utc_or_none(row.claimed_at), decision=row.decision, label=row.label, comment=row.comment,
        resolved_by=row.resolved_by, resolved_at=utc_or_none(row.resolved_at), created_at=utc(row.created_at))


def monitor_state(row: sa.Row[Any]) -> models.MonitorState:
    return models.MonitorState(deployment=row.deployment, environment=row.environment, rule=row.rule,
                               status=row.status, since=utc_or_none(row.since), consecutive=row.consecutive,
                               last_window_end=utc_or_none(row.last_window_end))


def monitor_event(row: sa.Row[Any]) -> models.MonitorEvent:
    return models.MonitorEvent(
        deployment=row.deployment, environment=row.environment, rule=row.rule, event=row.event,
        severity=row.severity, window_start=utc(row.window_start), window_end=utc(row.window_end),
        details=row.details, time=utc(row.time), id=row.id)


def trusted_key(row: sa.Row[Any]) -> models.TrustedKey:
    return models.TrustedKey(key_id=row.key_id, name=row.name, public_pem=row.public_pem, added_by=row.added_by,
                             added_at=utc(row.added_at))


def minute_sample(row: sa.Row[Any]) -> models.MinuteSample:
    return models.MinuteSample(
        minute=utc(row.minute), replica=row.replica, cpu_cores=row.cpu_cores, rss_bytes=row.rss_bytes,
        requests=row.requests, errors=row.errors, p99_ms=row.p99_ms, queue_depth=row.queue_depth,
        batch_rows=row.batch_rows, gpu_util=row.gpu_util, gpu_memory_bytes=row.gpu_memory_bytes)
