"""The small Protocols services use to reach the outside world.

Services depend on these, never on an adapter; ``bootstrap.py`` picks the adapters by URL.
Each Protocol has one contract test suite that every adapter passes (``tests/contract``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Protocol

from threadline.domain import hashchain, models
from threadline.gitops.model import ReplicaReading, Key, Observed, ServingSample, Workload
from threadline.gitops.spec import ModelDeployment


@dataclass(frozen=True)
class StoredArtifact:
    """A blob in the artifact store: its SHA-256 (bare hex) and size in bytes."""

    digest: str
    size: int


class ArtifactWriter(Protocol):
    """One streaming write; nothing becomes visible until ``commit``.

    Used as a context manager: leaving the block without ``commit`` (or with an exception)
    discards everything written so far.
    """

    def write(self, chunk: bytes) -> None:
        """Append bytes; raises PayloadTooLarge (and discards) past ``max_bytes``."""

    def commit(self) -> StoredArtifact:
        """Make the blob visible under its digest, atomically; idempotent for equal bytes.

        Raises InvalidInput when an ``expected_digest`` was given and the bytes differ.
        """

    def abort(self) -> None:
        """Discard what was written; safe to call twice."""

    def __enter__(self) -> "ArtifactWriter": ...

    def __exit__(self, *exc_info: object) -> None: ...


class ArtifactStore(Protocol):
    """Content-addressed blob storage keyed by SHA-256."""

    def writer(self, *, max_bytes: int | None = None, expected_digest: str | None = None) -> ArtifactWriter:
        """Start a streaming write (see ArtifactWriter)."""

    def put(self, chunks: Iterable[bytes], *, max_bytes: int | None = None,
            expected_digest: str | None = None) -> StoredArtifact:
        """Write all chunks through a writer and commit."""

    def exists(self, digest: str) -> bool:
        """Whether a blob with this digest is stored."""

    def size(self, digest: str) -> int:
        """Stored size in bytes; NotFound if absent."""

    def read(self, digest: str, *, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the blob; raises DigestMismatch after the last chunk if the bytes are corrupt."""

    def fetch(self, digest: str, dest: Path) -> Path:
        """Copy the blob to ``dest`` and verify it; ``dest`` appears only if the digest matches."""


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class Signer(Protocol):
    """The installation's key: signs audit checkpoints, attestations and context bundles."""

    key_id: str

    def sign(self, message: bytes) -> bytes: ...

    def verify(self, message: bytes, signature: bytes) -> bool: ...

    def public_pem(self) -> str: ...


class SecretBox(Protocol):
    """Symmetric encryption for secrets stored in the database."""

    def seal(self, plaintext: bytes) -> bytes: ...

    def open(self, sealed: bytes) -> bytes: ...


class ReadTransaction(Protocol):
    """Consistent reads of registry, identity and audit records."""

    def get_model(self, name: str) -> models.Model: ...

    def list_models(self, *, query: str | None, owner: str | None, limit: int,
                    after: str | None) -> list[models.Model]: ...

    def get_version(self, name: str, version: int) -> models.ModelVersion: ...

    def get_version_by_alias(self, name: str, alias: str) -> models.ModelVersion: ...

    def get_profile(self, name: str, version: int) -> Mapping[str, Any] | None: ...

    def list_versions(self, name: str, *, limit: int, after: int | None) -> list[models.ModelVersion]: ...

    def latest_version(self, name: str) -> int | None: ...

    def resolve_alias(self, name: str, alias: str) -> int: ...

    def aliases(self, name: str) -> dict[str, int]: ...

    def audit_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the newest audit entry, as recorded by the chain head."""

    def audit_entries(self, *, after: int, limit: int, actor: str | None = None, action: str | None = None,
                      object_prefix: str | None = None, before: int | None = None,
                      newest_first: bool = False) -> list[hashchain.AuditEntry]:
        """Entries after ``after`` (and before ``before``), oldest first unless ``newest_first``;
        ``action`` ending in ``.`` matches a family (``approval.``) and ``object_prefix`` matches
        the object and everything below it."""

    def count_audit_entries(self, *, actor: str | None = None, action: str | None = None,
                            object_prefix: str | None = None) -> int:
        """How many entries ``audit_entries`` with these filters would return in all."""

    def audit_checkpoints(self) -> list[hashchain.Checkpoint]: ...

    def user_by_token(self, token_digest: str) -> tuple[models.User, models.Token] | None: ...

    def user_by_name(self, name: str) -> models.User: ...

    def count_users(self) -> int: ...

    def list_users(self) -> list[models.User]: ...

    def list_tokens(self, user_id: int | None) -> list[tuple[str, models.Token]]:
        """(user name, token) pairs, of one user or of everyone."""

    def get_token(self, token_id: int) -> tuple[models.User, models.Token]: ...

    def get_mfa(self, user_id: int) -> models.MfaRecord | None: ...

    def latest_policy(self) -> models.PolicyRecord | None: ...

    def list_policies(self) -> list[models.PolicyRecord]: ...

    def approvals(self, name: str, version: int | None = None) -> list[models.Approval]:
        """Approval records in the order they were made."""

    def card_revisions(self, name: str, version: int) -> list[models.CardRevision]: ...

    def attestations(self, deployment: str, environment: str) -> list[models.Attestation]: ...

    def due_webhooks(self, now: datetime, limit: int) -> list[models.WebhookMessage]: ...

    def deployments(self, environment: str | None = None) -> list[models.DeploymentRecord]: ...

    def get_deployment(self, name: str, environment: str) -> models.DeploymentRecord: ...

    def deployment_history(self, name: str, environment: str, *, limit: int) -> list[models.HistoryRecord]:
        """Newest first."""

    def source_commit(self, source: str) -> str | None: ...

    def feedback(self, deployment: str, start: datetime, end: datetime) -> list[models.Feedback]:
        """Labels of the predictions made in [start, end)."""

    def get_bundle(self, bundle_id: str) -> models.BundleRecord: ...

    def review_tasks(self, *, queue: str | None, status: str | None, limit: int) -> list[models.ReviewTask]:
        """Oldest first, so a queue is worked in order."""

    def count_review_tasks(self, *, queue: str | None, status: str | None) -> int: ...

    def get_review_task(self, bundle_id: str) -> models.ReviewTask: ...

    def monitor_states(self, deployment: str, environment: str) -> list[models.MonitorState]: ...

    def monitor_events(self, *, deployment: str | None, environment: str | None, event: str | None = None,
                       limit: int) -> list[models.MonitorEvent]: ...

    def window_profile(self, deployment: str, kind: str, start: datetime,
                       end: datetime) -> Mapping[str, Any] | None: ...

    def trusted_keys(self) -> list[models.TrustedKey]: ...

    def utilization(self, deployment: str, environment: str, start: datetime,
                    end: datetime) -> list[models.MinuteSample]:
        """Oldest first."""

    def utilization_span(self) -> list[tuple[str, str, datetime, datetime]]: ...


class WriteTransaction(ReadTransaction, Protocol):
    """A serialised write: one writer at a time holds the audit chain head.

    Everything done through one WriteTransaction commits together or not at all, so a
    mutation and its audit entry can never be separated.
    """

    def add_model(self, model: models.Model) -> None: ...

    def add_version(self, version: models.ModelVersion, profile: Mapping[str, Any] | None) -> None: ...

    def set_status(self, name: str, version: int, status: str) -> None: ...

    def set_alias(self, name: str, alias: str, version: int, *, actor: str, time: datetime) -> int | None:
        """Point ``alias`` at ``version``; return the version it pointed at before."""

    def delete_alias(self, name: str, alias: str) -> int: ...

    def append_audit(self, entry: hashchain.AuditEntry) -> None: ...

    def add_checkpoint(self, checkpoint: hashchain.Checkpoint) -> None: ...

    def add_user(self, name: str, roles: tuple[str, ...], *, time: datetime,
                 teams: tuple[str, ...] = ()) -> models.User: ...

    def update_user(self, name: str, *, roles: tuple[str, ...] | None = None, teams: tuple[str, ...] | None = None,
                    disabled: bool | None = None) -> models.User: ...

    def revoke_token(self, token_id: int, *, time: datetime) -> None: ...

    def put_mfa(self, record: models.MfaRecord) -> None: ...

    def add_policy(self, record: models.PolicyRecord) -> None: ...

    def add_approval(self, approval: models.Approval) -> models.Approval: ...

    def add_card_revision(self, revision: models.CardRevision) -> None: ...

    def add_attestation(self, attestation: models.Attestation) -> models.Attestation: ...

    def enqueue_webhook(self, event: str, payload: str, *, time: datetime, url: str | None = None,
                        idempotency_key: str | None = None) -> None:
        """Queue a notification in this transaction: it is sent only if the change commits."""

    def put_feedback(self, item: models.Feedback) -> None: ...

    def add_bundle(self, record: models.BundleRecord) -> bool: ...

    def put_review_task(self, task: models.ReviewTask) -> None: ...

    def put_monitor_state(self, state: models.MonitorState) -> None: ...

    def add_monitor_event(self, event: models.MonitorEvent) -> None: ...

    def put_window_profile(self, deployment: str, kind: str, start: datetime, end: datetime,
                           body: Mapping[str, Any], *, time: datetime) -> None: ...

    def forget_window_profiles(self, deployment: str, kind: str, first: datetime, last: datetime) -> None: ...

    def add_trusted_key(self, key: models.TrustedKey) -> None: ...

    def put_utilization(self, deployment: str, environment: str, samples: list[models.MinuteSample]) -> None:
        """Store rollups; a minute stored again replaces the earlier one."""

    def prune_utilization(self, before: datetime) -> int: ...

    def put_deployment(self, record: models.DeploymentRecord) -> None: ...

    def delete_deployment(self, name: str, environment: str) -> None: ...

    def add_history(self, record: models.HistoryRecord) -> None: ...

    def set_source_commit(self, source: str, commit: str, *, time: datetime) -> None: ...

    def webhook_attempted(self, message_id: int, *, attempts: int, delivered_at: datetime | None,
                          next_attempt_at: datetime, error: str | None) -> None: ...

    def add_token(self, user_id: int, name: str, token_digest: str, prefix: str, *,
                  time: datetime, expires_at: datetime | None) -> models.Token: ...


class MetadataStore(Protocol):
    """Transactions over the metadata database (SQLite or PostgreSQL)."""

    def reading(self) -> AbstractContextManager[ReadTransaction]: ...

    def writing(self) -> AbstractContextManager[WriteTransaction]: ...

    def close(self) -> None: ...


class Runtime(Protocol):
    """Where deployments run (local processes or Kubernetes). It decides nothing: the
    planner says what to run and the runtime makes it so, idempotently."""

    name: str

    def declare(self, deployment: ModelDeployment) -> None:
        """Tell the runtime the full spec of a deployment before it is applied (resources, node
        selectors and probes are rendered from it); runtimes that need only the workload ignore it."""

    def observe(self) -> dict[Key, Observed]:
        """Every deployment this runtime runs, as it is right now (one call per pass)."""

    def apply(self, workload: Workload) -> None:
        """Make ``workload`` run; a no-op if it already does. Raises RuntimeFailure (and keeps
        what ran before) when the new replicas do not become ready."""

    def delete(self, key: Key) -> None:
        """Stop and remove a deployment; a no-op if it is absent."""

    def sample(self, key: Key) -> ServingSample:
        """Cumulative serving counters per revision ref, read from the replicas' metrics."""

    def readings(self, key: Key) -> list[ReplicaReading]:
        """Each live replica's CPU time, memory, GPU use and serving counters, for utilization."""

    def scale(self, key: Key, replicas: int) -> None:
        """Run ``replicas`` replicas of a deployment, within its workload's bounds (autoscaling)."""

    def start(self) -> None:
        """Begin supervising (restarting crashed replicas); a no-op where the platform does it."""

    def close(self) -> None:
        """Stop supervising and release the runtime; workloads keep running."""

    def stop_all(self) -> None:
        """End every workload this runtime runs (``--stop-workloads``)."""
