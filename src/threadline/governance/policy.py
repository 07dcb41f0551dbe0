"""The governance policy: which gates a version must pass per risk tier and environment.

A policy is YAML (``kind: GovernancePolicy``), checked here before it is stored, so a bad
file is refused with its line and the policy in force stays. The built-in pack ships as
``default-policy.yaml`` and is in force until someone sets another. ``unacceptable`` takes no
rules: it never deploys, whatever a policy says.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from threadline.domain import errors, models, names
from threadline.gitops import documents
from threadline.governance import cards

WILDCARD = "*"
DEFAULT_SOURCE = "default-policy.yaml"


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)


def _card_path(value: str) -> str:
    if value not in cards.FIELD_PATHS:
        raise ValueError(f"unknown model card field {value!r}; fields are: {', '.join(cards.SECTIONS)} "
                         "and their sub-fields (e.g. model_details.overview)")
    return value


def _environment(value: str) -> str:
    return value if value == WILDCARD else names.environment_name(value)


class MetricGate(_Schema):
    """A recorded metric must lie within [min, max]."""

    name: str = Field(min_length=1, max_length=128)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> MetricGate:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def describe(self) -> str:
        bounds = [f">= {self.min:g}" if self.min is not None else "", f"<= {self.max:g}" if self.max is not None else ""]
        return f"{self.name} {' and '.join(b for b in bounds if b)}"


class Fairness(_Schema):
    """Per-group results must be attached, and no metric may differ between groups by more."""

    max_disparity: float = Field(gt=0, le=1)


class Gates(_Schema):
    approvals: int = Field(0, ge=0, le=10, description="Distinct approvers, never the registrant.")
    mfa: bool = Field(False, description="Each counted approval needs a fresh TOTP code.")
    card: tuple[Annotated[str, AfterValidator(_card_path)], ...] = ()
    metrics: tuple[MetricGate, ...] = ()
    fairness: Fairness | None = None
    lineage: bool = Field(False, description="Training data with digests and the code commit.")
    monitoring: bool = Field(False, description="The deployment spec configures drift or accuracy monitoring.")
    escalation: bool = Field(False, description="The deployment spec routes low-confidence predictions to people.")


class Retention(_Schema):
    audit_days: int = Field(2555, ge=1)
    prediction_log_days: int = Field(183, ge=1)


TierName = Literal["minimal", "limited", "high"]
Environments = dict[Annotated[str, AfterValidator(_environment)], Gates]


class GovernancePolicy(_Schema):
    api_version: Literal["threadline/v1"]
    kind: Literal["GovernancePolicy"]
    retention: Retention = Field(default_factory=Retention)
    protected_aliases: dict[Annotated[str, AfterValidator(names.alias_name)],
                            Annotated[str, AfterValidator(names.environment_name)]] = Field(default_factory=dict)
    tiers: dict[TierName, Environments]

    @field_validator("tiers")
    @classmethod
    def _every_tier(cls, tiers: dict[str, Environments]) -> dict[str, Environments]:
        missing = [tier for tier in ("minimal", "limited", "high") if tier not in tiers]
        if missing:
            raise ValueError(f"tiers {', '.join(missing)} have no rules; give each tier its environments "
                             "(unacceptable takes none: it never deploys)")
        return tiers

    def gates(self, tier: models.RiskTier, environment: str) -> Gates | None:
        """The gates for ``tier`` in ``environment``; the ``*`` entry covers unlisted environments.

        None for ``unacceptable``: no gates can be passed.
        """
        if tier is models.RiskTier.UNACCEPTABLE:
            return None
        rules = self.tiers[tier.value]  # type: ignore[index]
        found = rules.get(environment) or rules.get(WILDCARD)
        if found is None:
            raise errors.PolicyViolation(
                f"the policy has no rules for tier {tier.value} in environment {environment!r}: "
                f"add {environment!r} or '*' under tiers.{tier.value}")
        return found


def parse(text: str, source: str) -> GovernancePolicy:
    """A policy from YAML text, or InvalidInput naming ``source``, line and field."""
    return documents.load_one(text, source, GovernancePolicy, what="a policy")


def default_text() -> str:
    return resources.files("threadline.governance").joinpath(DEFAULT_SOURCE).read_text("utf-8")
