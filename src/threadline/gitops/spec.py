"""The ``threadline/v1`` ModelDeployment spec: the schema every deployment declared in Git must match.

It is the edge between files people write and the planner, so it is strict: unknown fields
are errors, numbers are never read from strings, and whatever a runtime would otherwise
discover late (a canary without steps, ``512m`` of memory, a toleration Kubernetes refuses)
is refused here, naming the field. YAML keys are camelCase like Kubernetes objects; Python
attributes are snake_case. Durations are held as seconds. The models are frozen because the
planner must never change its inputs. The scalar types (durations, quantities, names) live in
``values``; ``documents`` reads YAML into these classes and reports errors by file and line;
``threadline spec schema`` publishes the JSON Schema generated from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from threadline.domain import escalation_rules
from threadline.gitops import values

API_VERSION = "threadline/v1"
KIND = "ModelDeployment"


class _Spec(BaseModel):
    # populate_by_name lets Python code say ``Serving(max_batch_rows=8)``; documents.py validates
    # by alias only, so a YAML file must spell keys in camelCase.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True,
                              alias_generator=to_camel, field_title_generator=lambda name, _: to_camel(name))


class Metadata(_Spec):
    name: values.DeploymentName
    environment: values.EnvironmentName
    owner: values.TeamName
    labels: values.Labels = Field(default_factory=dict)


class Replicas(_Spec):
    """Bounds for the autoscaler (the local runtime's, or the rendered HorizontalPodAutoscaler)."""

    min: int = Field(1, ge=0, description="0 allows scaling to zero.")
    max: int = Field(1, ge=1)
    target_concurrency: float = Field(4.0, gt=0, description=(
        "Requests in flight or queued per replica the local autoscaler aims for."))
    scale_down_stabilization: values.Duration = Field("60s", ge=0, validate_default=True, description=(
        "Scale down only to the most replicas wanted within this span: no flapping."))
    idle_after: values.Duration | None = Field("5m", gt=0, validate_default=True, description=(
        "With no requests for this long, scale to min; null: never."))

    @model_validator(mode="after")
    def _ordered(self) -> Replicas:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is more than max ({self.max})")
        return self


class Resources(_Spec):
    """Per replica. The defaults are what one serving process of a small model needs."""

    cpu: values.Cpu = "1"
    memory: values.Memory = "1Gi"
    gpu: int = Field(0, ge=0)
    gpu_type: values.LabelValue | None = Field(None, description=(
        "The GPU model, as the price table names it (e.g. nvidia-t4): what cost reports and right-sizing "
        "price; null: the table's defaultGpu."))


class Toleration(_Spec):
    """A Kubernetes toleration, held to the rules the API server would apply."""

    key: values.LabelKey | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: values.LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="null: every effect.")
    toleration_seconds: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator Exists matches any value: leave value out")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator Exists")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds applies only to effect NoExecute")
        return self


class CanaryStep(_Spec):
    weight: int = Field(ge=1, le=100, description="Percent of traffic sent to the new revision.")
    pause: values.Duration = Field("60s", ge=0, validate_default=True,
                                   description="How long to hold this weight before analysis.")


class Analysis(_Spec):
    """Thresholds a canary must stay within at each step; missing data pauses, never promotes."""

    max_error_rate: values.Rate = 0.01
    max_p99_latency_ms: float | None = Field(None, gt=0, description="null: latency is not compared.")
    window: values.Duration = Field("1m", gt=0, validate_default=True)


class Rollout(_Spec):
    strategy: Literal["recreate", "canary"] = "recreate"
    steps: list[CanaryStep] = Field(default_factory=list)
    analysis: Analysis = Field(default_factory=Analysis, description="Canary only.")

    @model_validator(mode="after")
    def _fits_strategy(self) -> Rollout:
        if self.strategy == "recreate":
            # The default analysis is allowed, so that a dumped spec validates again.
            if self.steps or self.analysis != Analysis():
                raise ValueError("steps and analysis apply only to strategy canary")
            return self
        if not self.steps:
            raise ValueError("strategy canary needs at least one step")
        for number, (before, step) in enumerate(zip(self.steps, self.steps[1:]), start=2):
            if step.weight <= before.weight:
                raise ValueError(f"step weights must increase: step {number} has weight {step.weight} "
                                 f"after {before.weight}")
        return self


class Health(_Spec):
    """Checks after every apply; failing them rolls back to the last healthy revision."""

    readiness_timeout: values.Duration = Field("60s", gt=0, validate_default=True,
                                                description="Time a new revision has to become ready.")
    period: values.Duration = Field("10s", gt=0, validate_default=True, description="Time between checks.")
    failure_threshold: int = Field(3, ge=1, description="Consecutive failed checks that trigger a rollback.")
    window: values.Duration = Field("1m", gt=0, validate_default=True,
                                     description="Span the error rate and latency are measured over.")
    max_error_rate: values.Rate | None = Field(0.05, description="null: the error rate is not checked.")
    max_p99_latency_ms: float | None = Field(None, gt=0, description="null: latency is not checked.")


class AlertRoute(_Spec):
    """Shared by every alert rule: how loud it is and who hears it besides the event log."""

    severity: Literal["info", "warning", "critical"] = "warning"
    notify: list[values.Webhook] = Field(default_factory=list, description=(
        "Webhooks that receive the firing and the resolution (signed JSON); the event log always does."))


class Drift(AlertRoute):
    method: Literal["psi", "ks", "wasserstein", "jensenshannon", "chisquare"] | None = Field(
        None, description="null: the monitoring default for each feature's type.")
    threshold: float | None = Field(None, gt=0, description=(
        "A p-value for ks and chisquare (drift below it), a distance for the others (drift at or above "
        "it); null: the method's default. Needs a method."))
    window: values.Duration = Field("1h", gt=0, validate_default=True)

    @model_validator(mode="after")
    def _threshold_fits_method(self) -> Drift:
        if self.threshold is None:
            return self
        if self.method is None:
            raise ValueError("a threshold needs a method: its meaning depends on the method")
        if self.method in ("ks", "chisquare", "jensenshannon") and self.threshold > 1:
            raise ValueError(f"a {self.method} threshold is at most 1")
        return self


class Accuracy(AlertRoute):
    """``minimum`` for scores where higher is better, ``maximum`` for errors (mae, rmse)."""

    window: values.Duration = Field("1h", gt=0, validate_default=True)
    metric: Literal["accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse", "r2"]
    minimum: float | None = None
    maximum: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _bound_fits_metric(self) -> Accuracy:
        if self.metric in ("mae", "rmse"):
            if self.maximum is None or self.minimum is not None:
                raise ValueError(f"{self.metric} is an error (lower is better): give maximum, not minimum")
            return self
        if self.minimum is None or self.maximum is not None:
            raise ValueError(f"{self.metric} is a score (higher is better): give minimum, not maximum")
        if self.minimum > 1 or (self.minimum < 0 and self.metric != "r2"):
            raise ValueError(f"a {self.metric} minimum is at most 1" if self.metric == "r2"
                             else f"a {self.metric} minimum lies between 0 and 1")
        return self


class Latency(AlertRoute):
    window: values.Duration = Field("1h", gt=0, validate_default=True)
    p99_ms: float | None = Field(None, gt=0)
    max_error_rate: values.Rate | None = None

    @model_validator(mode="after")
    def _something_checked(self) -> Latency:
        if self.p99_ms is None and self.max_error_rate is None:
            raise ValueError("give p99Ms, maxErrorRate or both")
        return self


class Retrain(_Spec):
    """Who is asked to retrain after ``after`` consecutive breaching windows of any rule."""

    webhook: values.Webhook | None = None
    command: str | None = Field(None, description=(
        "The name of a command the operator listed in THREADLINE_RETRAIN_COMMANDS; it receives the JSON "
        "context on stdin. A spec names commands, it never carries them: Git content must not run code."))
    after: int = Field(3, ge=1, description="Consecutive breaching windows before a retraining call.")
    cool_down: values.Duration = Field("24h", gt=0, validate_default=True,
                                       description="Time after a call during which no new call is made.")

    @model_validator(mode="after")
    def _one_target(self) -> Retrain:
        if (self.webhook is None) == (self.command is None):
            raise ValueError("give exactly one of webhook and command")
        return self


class Monitoring(_Spec):
    drift: Drift | None = None
    accuracy: Accuracy | None = None
    latency: Latency | None = None
    retrain: Retrain | None = None


class Escalation(_Spec):
    """Predictions less confident than ``confidence_below`` go to a human review queue."""

    confidence_below: float = Field(gt=0, le=1)
    queue: values.QueueName
    rules: list[str] = Field(default_factory=list, max_length=50, description=(
        "Predictions a person must see whatever the confidence: NAME OP VALUE over an input, an output "
        "or confidence, e.g. \"label == fraud\" or \"amount > 10000\"."))

    @field_validator("rules")
    @classmethod
    def _rules_parse(cls, rules: list[str]) -> list[str]:
        return [escalation_rules.parse(rule).text for rule in rules]


class Serving(_Spec):
    """Data-plane settings of each serving process; the defaults are those of ``threadline serve``."""

    max_batch_rows: int = Field(64, ge=1)
    max_wait_ms: float = Field(0.0, ge=0)
    rate_limit: float = Field(0.0, ge=0, description="Requests per second per token; 0: unlimited.")
    rate_burst: int = Field(100, ge=1)


class DeploymentSpec(_Spec):
    model: values.ModelName
    version: int | None = Field(None, ge=1, description="Exactly one of version and alias.")
    alias: values.AliasName | None = Field(None, description="Resolved and pinned to a digest at apply time.")
    replicas: Replicas = Field(default_factory=Replicas)
    resources: Resources = Field(default_factory=Resources)
    node_selector: values.Labels = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list)
    rollout: Rollout = Field(default_factory=Rollout)
    health: Health = Field(default_factory=Health)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    escalation: Escalation | None = None
    serving: Serving = Field(default_factory=Serving)
    self_heal: bool = Field(False, description="Restore drifted state on the next pass.")
    prune: bool = Field(False, description="Delete deployments that are no longer declared.")

    @model_validator(mode="after")
    def _one_reference(self) -> DeploymentSpec:
        if (self.version is None) == (self.alias is None):
            raise ValueError("give exactly one of version and alias")
        return self


class ModelDeployment(_Spec):
    api_version: Literal["threadline/v1"]
    kind: Literal["ModelDeployment"]
    metadata: Metadata
    spec: DeploymentSpec

    @property
    def key(self) -> tuple[str, str]:
        """What makes a deployment unique: its name within its environment."""
        return self.metadata.name, self.metadata.environment

