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
    return {
        "inputs": [_spec_to_json(spec) for spec in signature.inputs],
        "outputs": [_spec_to_json(spec) for spec in signature.outputs],
    }


def _spec_to_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": list(spec.shape)}


def signature_from_json(data: dict[str, Any]) -> Signature:
    def specs(items: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(i["name"], i["datatype"], tuple(i["shape"])) for i in items)

    return Signature(inputs=specs(data["inputs"]), outputs=specs(data["outputs"]))


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
