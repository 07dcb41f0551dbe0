"""What a caller asks the registry for, validated into domain values before any I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from threadline.domain import errors, models

MAX_METRICS = 200


@dataclass(frozen=True)
class NewModel:
    name: str
    owner: str
    risk_tier: models.RiskTier
    description: str = ""


@dataclass(frozen=True)
class NewVersion:
    model: str
    artifact_digest: str
    flavor: models.Flavor | None = None
    trusted: bool = False
    profile: Mapping[str, Any] | None = None
    sample_digest: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    card: Mapping[str, Any] = field(default_factory=dict)
    lineage: models.Lineage = field(default_factory=models.Lineage)
    description: str = ""
    # Used only when the model does not exist yet: registering creates it.
    owner: str | None = None
    risk_tier: models.RiskTier | None = None


def metrics(values: Mapping[str, Any]) -> dict[str, float]:
    if len(values) > MAX_METRICS:
        raise errors.InvalidInput(f"at most {MAX_METRICS} metrics", field="metrics")
    checked: dict[str, float] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not key or len(key) > 128:
            raise errors.InvalidInput("metric names are non-empty strings of at most 128 characters",
                                      field="metrics")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise errors.InvalidInput(f"metric {key!r} must be a finite number, got {value!r}",
                                      field=f"metrics.{key}")
        checked[key] = float(value)
    return checked

