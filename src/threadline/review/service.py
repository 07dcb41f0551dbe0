"""Context bundles and the human review queue (use case).

A serving process hands in a bundle draft; the control plane completes it with what only it
knows for sure (the environment, the Git commit the deployment was applied from, the spec's
review queue), signs it with the installation's Ed25519 key, stores it and opens a review
task, in one transaction. Signing here rather than in the serving process keeps the private
key out of every replica; the serving process's spool protects the draft until then.

Reviewers claim a task (one at a time), then resolve it by accepting the model's answer or
overriding it; the resulting label becomes a feedback label of the prediction, so accuracy
monitoring sees every reviewed case. Every view and every change is audited.

Imported bundles keep the signature of the installation that made them; they are verified
against this installation's key and the keys an admin trusted, and open no review task.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

import orjson

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.bundles import document, portable
from threadline.domain import access, errors, models, names
from threadline.gitops import spec as deployment_spec
from threadline.monitoring import accuracy
from threadline.monitoring.feedback import task_of

DEFAULT_QUEUE = "default"
DECISIONS = ("accept", "override")
STATUSES = ("open", "claimed", "resolved")
MAX_DRAFT_BYTES = 4 << 20
_BUNDLE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclasses.dataclass(frozen=True)
class BundleView:
    record: models.BundleRecord
    task: models.ReviewTask | None

    @property
    def bundle(self) -> dict[str, Any]:
        return orjson.loads(self.record.body)


class Reviews:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock, signer: ports.Signer,
                 artifacts: ports.ArtifactStore, workdir: Path) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._signer = signer
        self._artifacts = artifacts
        self._workdir = workdir

    # -- bundles in ---------------------------------------------------------------------

    def ingest(self, actor: access.Actor, draft: bytes) -> tuple[models.BundleRecord, bool]:
        """Complete, sign and store a serving process's draft; False when it was stored before."""
        actor.require(access.Permission.WRITE_BUNDLES)
        if len(draft) > MAX_DRAFT_BYTES:
            raise errors.PayloadTooLarge(f"a bundle is at most {MAX_DRAFT_BYTES} bytes")
        try:
            data = orjson.loads(draft)
        except orjson.JSONDecodeError as exc:
            raise errors.InvalidInput(f"the bundle is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise errors.InvalidInput("the bundle must be a JSON object")
        deployment = names.model_name(str(data.get("deployment", "")), field="deployment")
        if not isinstance(data.get("id"), str) or not _BUNDLE_ID.match(data["id"]):
            raise errors.InvalidInput("must be the prediction id (letters, digits, '.', '_', '-'; at most 64)",
                                      field="id")
        data.update(self._placement(deployment, data))
        bundle = document.parse(orjson.dumps(data))
        signed = document.sign(bundle, self._signer)
        now = self._clock.now()
        record = _record(signed, "served", now)
        with self._store.writing() as tx:
            fresh = tx.add_bundle(record)
            if fresh:
                queue = bundle.queue or DEFAULT_QUEUE
                tx.put_review_task(models.ReviewTask(bundle.id, queue, "open", None, None, None, None, "", None,
                                                     None, now))
                self._audit.record(tx, actor.name, "bundle.received", f"bundle/{bundle.id}", {
                    "deployment": deployment, "queue": queue, "reason": bundle.reason, "digest": record.digest})
        return record, fresh

    def _placement(self, deployment: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Environment, commit and queue from the deployment the agent applied, when it knows it."""
        with self._store.reading() as tx:
            records = [r for r in tx.deployments() if r.name == deployment and r.spec]
        served = f"{data.get('model')}@{data.get('version')}"
        for record in records:
            applied = record.state.get("applied") or {}
            refs = {f"{r['model']}@{r['version']}" for r in (applied.get("stable"), applied.get("canary")) if r}
            if served in refs or len(records) == 1:
                spec = deployment_spec.ModelDeployment.model_validate(dict(record.spec), by_alias=True,
                                                                      by_name=False).spec
                queue = spec.escalation.queue if spec.escalation else data.get("queue")
                return {"environment": record.environment, "git_commit": record.commit, "queue": queue}
        return {}

    def import_archive(self, actor: access.Actor, path: Path) -> tuple[models.BundleRecord, bool]:
        """Verify and store a bundle exported elsewhere (and its model artifact, when included)."""
        actor.require(access.Permission.WRITE_BUNDLES)
        with portable.open_archive(path, self._workdir, trusted_keys=self.trusted_keys()) as imported:
            model_stored = False
            if imported.model_path is not None:
                with open(imported.model_path, "rb") as handle:
                    self._artifacts.put(iter(lambda: handle.read(1 << 20), b""),
                                        expected_digest=imported.signed.bundle.artifact_digest)
                model_stored = True
            record = _record(imported.signed, "imported", self._clock.now())
            with self._store.writing() as tx:
                fresh = tx.add_bundle(record)
                self._audit.record(tx, actor.name, "bundle.imported", f"bundle/{record.id}", {
                    "key_id": record.key_id, "digest": record.digest, "with_model": model_stored, "new": fresh})
        return record, fresh

    def trusted_keys(self) -> dict[str, str]:
        with self._store.reading() as tx:
            keys = {key.key_id: key.public_pem for key in tx.trusted_keys()}
        keys[self._signer.key_id] = self._signer.public_pem()
        return keys

    def trust_key(self, actor: access.Actor, name: str, public_pem: str) -> models.TrustedKey:
        actor.require(access.Permission.MANAGE_POLICY)
        name = names.model_name(name, field="name")
        key = models.TrustedKey(document.key_id_of(public_pem), name, public_pem.strip() + "\n", actor.name,
                                self._clock.now())
        with self._store.writing() as tx:
            tx.add_trusted_key(key)
            self._audit.record(tx, actor.name, "bundle-key.trusted", f"key/{key.key_id}", {"name": name})
        return key

    # -- the queue ----------------------------------------------------------------------

    def tasks(self, actor: access.Actor, *, queue: str | None, status: str | None,
              limit: int) -> tuple[list[models.ReviewTask], int]:
        actor.require(access.Permission.READ_SENSITIVE)
        if status is not None and status not in STATUSES:
            raise errors.InvalidInput(f"unknown status {status!r}: expected one of {', '.join(STATUSES)}",
                                      field="status")
        with self._store.writing() as tx:
            found = tx.review_tasks(queue=queue, status=status, limit=limit)
            total = tx.count_review_tasks(queue=queue, status=status)
            self._audit.record(tx, actor.name, "review.listed", f"queue/{queue or '*'}",
                               {"status": status, "shown": len(found)})
        return found, total

    def show(self, actor: access.Actor, bundle_id: str) -> BundleView:
        actor.require(access.Permission.READ_SENSITIVE)
        with self._store.writing() as tx:
            record = tx.get_bundle(bundle_id)
            task = _task_or_none(tx, bundle_id)
            self._audit.record(tx, actor.name, "bundle.read", f"bundle/{bundle_id}", {"deployment": record.deployment})
        return BundleView(record, task)

    def claim(self, actor: access.Actor, bundle_id: str, *, take_over: bool = False) -> models.ReviewTask:
        actor.require(access.Permission.REVIEW)
        with self._store.writing() as tx:
            task = tx.get_review_task(bundle_id)
            if task.status == "resolved":
                raise errors.Conflict(f"bundle {bundle_id} was resolved by {task.resolved_by} at "
                                      f"{_when(task.resolved_at)}")
            if task.status == "claimed" and task.assignee != actor.name and not take_over:
                raise errors.Conflict(f"bundle {bundle_id} is claimed by {task.assignee} since "
                                      f"{_when(task.claimed_at)}; only one reviewer works a case at a time "
                                      "(an admin may take it over)")
            if take_over and task.assignee not in (None, actor.name) and not actor.is_admin:
                raise errors.Forbidden("only an admin may take over a case another reviewer claimed")
            claimed = dataclasses.replace(task, status="claimed", assignee=actor.name, claimed_at=self._clock.now())
            tx.put_review_task(claimed)
            self._audit.record(tx, actor.name, "review.claimed", f"bundle/{bundle_id}",
                               {"previous": task.assignee} if task.assignee not in (None, actor.name) else {})
        return claimed

    def resolve(self, actor: access.Actor, bundle_id: str, *, decision: str, label: Any = None,
                comment: str = "") -> models.ReviewTask:
        """Close the case; the label (the model's own for ``accept``) becomes the prediction's feedback."""
        actor.require(access.Permission.REVIEW)
        if decision not in DECISIONS:
            raise errors.InvalidInput(f"unknown decision {decision!r}: accept the model's answer or override it",
                                      field="decision")
        if len(comment) > 4000:
            raise errors.InvalidInput("a comment is at most 4000 characters", field="comment")
        with self._store.writing() as tx:
            task = tx.get_review_task(bundle_id)
            if task.status == "resolved":
                raise errors.Conflict(f"bundle {bundle_id} was resolved by {task.resolved_by} at "
                                      f"{_when(task.resolved_at)}")
            if task.status == "claimed" and task.assignee != actor.name:
                raise errors.Conflict(f"bundle {bundle_id} is claimed by {task.assignee}: they resolve it, or an "
                                      "admin takes it over first")
            record = tx.get_bundle(bundle_id)
            bundle = orjson.loads(record.body)
            kind = task_of(models.signature_from_json(bundle["signature"]))
            final = _label(decision, label, bundle, kind)
            now = self._clock.now()
            resolved = dataclasses.replace(task, status="resolved", assignee=actor.name,
                                           claimed_at=task.claimed_at or now, decision=decision, label=final,
                                           comment=comment, resolved_by=actor.name, resolved_at=now)
            tx.put_review_task(resolved)
            tx.put_feedback(models.Feedback(record.deployment, record.id, record.created, final, "review", actor.name,
                                            now))
            tx.forget_window_profiles(record.deployment, "quality", record.created, record.created)
            self._audit.record(tx, actor.name, "review.resolved", f"bundle/{bundle_id}", {
                "decision": decision, "label": final, "seconds_open": (now - task.created_at).total_seconds()})
        return resolved

    def public_key(self) -> tuple[str, str]:
        return self._signer.key_id, self._signer.public_pem()


def _label(decision: str, label: Any, bundle: Mapping[str, Any], kind: str) -> Any:
    if decision == "override":
        if label is None:
            raise errors.InvalidInput("an override needs the right label", field="label")
        return accuracy.coerce_label(label, kind)
    outputs = bundle.get("outputs") or {}
    answer = outputs.get("label") if kind == "classification" else next(iter(outputs.values()), None)
    if label is not None and accuracy.coerce_label(label, kind) != accuracy.coerce_label(answer, kind):
        raise errors.InvalidInput(f"accepting the model's answer means the label {answer!r}; to give "
                                  f"{label!r}, override", field="label")
    if answer is None:
        raise errors.InvalidInput("the bundle records no model answer to accept; override with a label",
                                  field="decision")
    return accuracy.coerce_label(answer, kind)


def _record(signed: document.SignedBundle, origin: str, now: datetime) -> models.BundleRecord:
    bundle = signed.bundle
    return models.BundleRecord(
        id=bundle.id, deployment=bundle.deployment, queue=bundle.queue, model=bundle.model, version=bundle.version,
        created=bundle.created, reason=bundle.reason, digest=document.digest(bundle), key_id=signed.key_id,
        signature=signed.signature, body=document.canonical(bundle).decode("utf-8"), origin=origin,
        received_at=now)


def _task_or_none(tx: ports.ReadTransaction, bundle_id: str) -> models.ReviewTask | None:
    try:
        return tx.get_review_task(bundle_id)
    except errors.NotFound:
        return None


def _when(moment: datetime | None) -> str:
    return "?" if moment is None else moment.isoformat(timespec="seconds")
