"""The GitOps vocabulary shared by the planner, the executor and the runtimes (pure values).

A ``Workload`` is what a runtime is asked to run for one deployment: a pinned stable
revision, optionally a canary revision with its share of traffic, a replica count and the
serving settings. An ``Observed`` is what a runtime reports back. The planner compares the
two after normalising away what the runtime manages itself (ports, process ids, restarts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from threadline.gitops import spec as deployment_spec

Key = tuple[str, str]  # (deployment name, environment)


def key_text(key: Key) -> str:
    return f"{key[1]}/{key[0]}"


@dataclass(frozen=True)
class Revision:
    """One model version pinned to the digest of its artifact."""

    model: str
    version: int
    digest: str

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


@dataclass(frozen=True)
class Workload:
    key: Key
    stable: Revision
    replicas: int
    serving: deployment_spec.Serving
    escalate_below: float | None = None
    escalate_rules: tuple[str, ...] = ()
    canary: Revision | None = None
    canary_weight: int = 0  # percent of traffic to the canary, 0-100
    config_hash: str = ""   # of the spec fields the runtime needs (serving, resources, escalation)
    replicas_max: int = 0   # an autoscaler may run up to this many (0: exactly ``replicas``)

    @property
    def most_replicas(self) -> int:
        return max(self.replicas, self.replicas_max)

    def weights(self) -> list[tuple[Revision, int]]:
        """The traffic split: ``[(stable, 100)]`` or ``[(stable, 100 - w), (canary, w)]``."""
        if self.canary is None or self.canary_weight <= 0:
            return [(self.stable, 100)]
        if self.canary_weight >= 100:
            return [(self.canary, 100)]
        return [(self.stable, 100 - self.canary_weight), (self.canary, self.canary_weight)]


@dataclass(frozen=True)
class Observed:
    """A deployment as the runtime sees it right now."""

    key: Key
    stable: Revision | None
    canary: Revision | None
    canary_weight: int
    replicas: int          # running now (an autoscaler moves it between the workload's bounds)
    ready: int             # replicas answering their readiness check
    config_hash: str = ""
    endpoints: tuple[str, ...] = ()  # base URLs of the replicas (managed by the runtime)
    restarts: int = 0                # managed by the runtime; never a reason to act


@dataclass(frozen=True)
class RevisionSample:
    """Serving metrics of one revision over a window (from the runtime's metrics)."""

    requests: int
    errors: int
    p99_ms: float | None

    @property
    def error_rate(self) -> float | None:
        return None if self.requests == 0 else self.errors / self.requests


@dataclass(frozen=True)
class ServingSample:
    """Cumulative counters per revision ref at one time; windows are differences of two."""

    by_revision: dict[str, RevisionSample] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaReading:
    """One replica at one moment: cumulative counters (a rate is a difference of two readings).

    ``gpu_util``/``gpu_memory_bytes`` are None when there is no GPU data (absent, not zero).
    """

    replica: str
    cpu_seconds: float
    rss_bytes: int
    requests: float
    errors: float
    latency_seconds: float                   # sum of request durations (concurrency = its rate)
    latency_buckets: tuple[tuple[float, float], ...]  # (upper bound s, cumulative count)
    queue_depth: float
    batch_rows: float                        # sum of rows per model call
    batches: float                           # model calls
    gpu_util: float | None = None
    gpu_memory_bytes: int | None = None


def config_hash(spec: deployment_spec.DeploymentSpec) -> str:
    """A digest of the spec fields a running workload depends on besides its revisions."""
    relevant = {"serving": spec.serving.model_dump(mode="json"), "resources": spec.resources.model_dump(mode="json"),
                "escalation": None if spec.escalation is None else spec.escalation.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]
