"""Registry entities as immutable values; stores return these, never ORM rows.

A ModelVersion is immutable once created: everything a later reader needs to reproduce or
judge it (artifact digest, signature, profile, metrics, card, lineage) is fixed here. What
may change over time (aliases, approvals, status) lives in separate records.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from threadline.domain import errors


class RiskTier(str, enum.Enum):
    """EU AI Act style risk tiers; ``unacceptable`` never deploys anywhere."""

    MINIMAL = "minimal"
    LIMITED = "limited"
    HIGH = "high"
    UNACCEPTABLE = "unacceptable"


class Flavor(str, enum.Enum):
    """How a model artifact is loaded."""

    SKLEARN = "sklearn"
    ONNX = "onnx"
    MLFLOW = "mlflow"


class ArtifactFormat(str, enum.Enum):
    """The concrete bytes behind a flavor; pickle executes code on load and needs trust."""

    SKOPS = "skops"
    PICKLE = "pickle"
    ONNX = "onnx"
    MLFLOW_DIR = "mlflow-dir"

    @property
    def executes_code_on_load(self) -> bool:
        return self is ArtifactFormat.PICKLE


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: Open Inference Protocol datatype and shape (-1 = any)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Signature:
    """The inputs a version accepts and the outputs it returns."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    classes: tuple[Any, ...] | None = None  # a classifier's labels, in the order of its probabilities


@dataclass(frozen=True)
class DataRef:
    """A dataset a version was trained on: where it was and what exactly it contained."""

    uri: str
    digest: str | None = None


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: data, code, parent and feature pipeline."""

    training_data: tuple[DataRef, ...] = ()
    code_repo: str | None = None
    code_commit: str | None = None
    parent_version: int | None = None
    feature_pipeline: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Model:
    name: str
    owner: str
    risk_tier: RiskTier
    description: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    artifact_digest: str
    artifact_size: int
    flavor: Flavor
    artifact_format: ArtifactFormat
    trusted: bool
    signature: Signature
    has_profile: bool  # the reference profile itself is read on its own: it is large
    metrics: Mapping[str, float]
    card: Mapping[str, Any]
    lineage: Lineage
    status: str
    description: str
    created_by: str
    created_at: datetime


# JSON forms of the nested values, shared by the database and the API: written out by hand
# because dataclasses.asdict deep-copies every leaf, which dominated read latency.

def signature_to_json(signature: Signature) -> dict[str, Any]:
    data: dict[str, Any] = {
        "inputs": [_spec_to_json(spec) for spec in signature.inputs],
        "outputs": [_spec_to_json(spec) for spec in signature.outputs],
    }
    if signature.classes is not None:
        data["classes"] = list(signature.classes)
    return data


def _spec_to_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def signature_from_json(data: dict[str, Any]) -> Signature:
    def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(i["name"], i["datatype"], tuple(i["shape"])) for i in items)

    classes = data.get("classes")
    return Signature(inputs=specs(data["inputs"]), outputs=specs(data["outputs"]),
                     classes=None if classes is None else tuple(classes))


def lineage_to_json(lineage: Lineage) -> dict[str, Any]:
    return {
        "training_data": [{"uri": ref.uri, "digest": ref.digest} for ref in lineage.training_data],
        "code_repo": lineage.code_repo,
        "code_commit": lineage.code_commit,
        "parent_version": lineage.parent_version,
        "feature_pipeline": lineage.feature_pipeline,
        "tags": dict(lineage.tags),
    }


def lineage_from_json(data: dict[str, Any]) -> Lineage:
    return Lineage(
        training_data=tuple(DataRef(d["uri"], d.get("digest")) for d in data["training_data"]),
        code_repo=data.get("code_repo"), code_commit=data.get("code_commit"),
        parent_version=data.get("parent_version"), feature_pipeline=data.get("feature_pipeline"),
        tags=dict(data.get("tags") or {}),
    )


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: tuple[str, ...]
    disabled: bool
    created_at: datetime
    teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Token:
    id: int
    user_id: int
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class Decision(str, enum.Enum):
    """One step of the approval workflow; every step is its own immutable record."""

    REQUEST = "request"
    APPROVE = "approve"
    REJECT = "reject"
    WITHDRAW = "withdraw"


@dataclass(frozen=True)
class Approval:
    model: str
    version: int
    environment: str
    decision: Decision
    actor: str
    comment: str
    mfa: bool  # the actor gave a fresh TOTP code with this decision
    time: datetime
    id: int = 0


@dataclass(frozen=True)
class CardRevision:
    """A model card as edited at one time; the newest revision is the version's card."""

    model: str
    version: int
    revision: int
    card: Mapping[str, Any]
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class PolicyRecord:
    version: int
    document: str
    digest: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class Attestation:
    deployment: str
    environment: str
    item: str
    actor: str
    comment: str
    time: datetime
    key_id: str
    signature: bytes
    id: int = 0


@dataclass(frozen=True)
class MfaRecord:
    user_id: int
    secret: bytes  # encrypted
    confirmed_at: datetime | None
    last_step: int


@dataclass(frozen=True)
class WebhookMessage:
    id: int
    event: str
    payload: str
    attempts: int
    url: str | None = None               # one receiver (an alert route); None: every configured one
    idempotency_key: str | None = None   # the same for every retry of one notification


@dataclass(frozen=True)
class DeploymentRecord:
    """A deployment as the agent last left it: its spec, its condition and the agent's memory."""

    name: str
    environment: str
    spec: Mapping[str, Any]          # the ModelDeployment document (JSON form), or {} once removed
    commit: str
    status: str                      # Synced | OutOfSync | Progressing | Degraded | Blocked
    reason: str
    differences: tuple[str, ...]
    state: Mapping[str, Any]         # gitops.state.DeploymentState as JSON
    updated_at: datetime
    endpoints: tuple[str, ...] = ()  # where its replicas answered at the last pass

@dataclass(frozen=True)
class HistoryRecord:
    """One applied (or refused) action: what ran, at which commit, with which evidence."""

    name: str
    environment: str
    commit: str
    action: str
    outcome: str                     # applied | failed | blocked | checked
    workload: Mapping[str, Any] | None
    reason: str
    evidence: Mapping[str, Any]
    time: datetime
    id: int = 0


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_cursor`` is None on the last page."""

    items: tuple[Any, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class Feedback:
    """A ground-truth label for one logged prediction; a later label replaces an earlier one."""

    deployment: str
    prediction_id: str
    prediction_time: datetime
    label: Any
    source: str          # api | review
    actor: str
    time: datetime


@dataclass(frozen=True)
class BundleRecord:
    """A stored context bundle: ``body`` is the canonical JSON its signature covers."""

    id: str
    deployment: str
    queue: str | None
    model: str
    version: int
    created: datetime
    reason: str
    digest: str
    key_id: str
    signature: str
    body: str
    origin: str          # served | imported
    received_at: datetime


@dataclass(frozen=True)
class ReviewTask:
    bundle_id: str
    queue: str
    status: str          # open | claimed | resolved
    assignee: str | None
    claimed_at: datetime | None
    decision: str | None  # accept | override
    label: Any
    comment: str
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class MonitorState:
    deployment: str
    environment: str
    rule: str
    status: str          # ok | firing
    since: datetime | None
    consecutive: int
    last_window_end: datetime | None


@dataclass(frozen=True)
class MonitorEvent:
    """An alert firing or resolving, or a retraining call: the event log route."""

    deployment: str
    environment: str
    rule: str
    event: str           # alert.fired | alert.resolved | retrain.triggered
    severity: str
    window_start: datetime
    window_end: datetime
    details: Mapping[str, Any]
    time: datetime
    id: int = 0


@dataclass(frozen=True)
class TrustedKey:
    key_id: str
    name: str
    public_pem: str
    added_by: str
    added_at: datetime


@dataclass(frozen=True)
class MinuteSample:
    """One replica's utilization over one minute (a rollup of the sampler's readings).

    GPU fields are None when no GPU data exist (no GPU, or no NVML): absent, never zero.
    """

    minute: datetime          # UTC, the start of the minute
    replica: str
    cpu_cores: float          # average cores used in the minute
    rss_bytes: int            # peak resident memory in the minute
    requests: int
    errors: int
    p99_ms: float | None
    queue_depth: float        # the deepest queue seen
    batch_rows: float | None  # mean rows per model call
    gpu_util: float | None = None
    gpu_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.minute.tzinfo is None:
            raise errors.InvalidInput("must be a time-zone-aware (UTC) time", field="minute")
        if not self.replica:
            raise errors.InvalidInput("a sample needs the replica it came from", field="replica")
        for name in ("cpu_cores", "rss_bytes", "requests", "errors", "queue_depth"):
            if not getattr(self, name) >= 0:  # also refuses NaN
                raise errors.InvalidInput(f"must be zero or more, not {getattr(self, name)}", field=name)
        if self.gpu_util is not None and not 0 <= self.gpu_util <= 1:
            raise errors.InvalidInput(f"must be between 0 and 1, not {self.gpu_util}", field="gpu_util")
