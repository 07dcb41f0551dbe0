"""Request bodies (pydantic, unknown fields refused) and domain -> JSON encoders."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from threadline.domain import lifecycle, models, names


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelIn(Strict):
    name: str
    owner: str
    risk_tier: models.RiskTier = models.RiskTier.MINIMAL
    description: str = Field(default="", max_length=10_000)


class DataRefIn(Strict):
    uri: str = Field(min_length=1, max_length=2048)
    digest: str | None = None

    @field_validator("digest")
    @classmethod
    def _digest(cls, value: str | None) -> str | None:
        return None if value is None else names.sha256_digest(value)


class LineageIn(Strict):
    training_data: list[DataRefIn] = Field(default_factory=list, max_length=100)
    code_repo: str | None = Field(default=None, max_length=2048)
    code_commit: str | None = Field(default=None, max_length=128)
    parent_version: int | None = Field(default=None, ge=1)
    feature_pipeline: str | None = Field(default=None, max_length=10_000)
    tags: dict[str, str] = Field(default_factory=dict, max_length=100)

    def to_domain(self) -> models.Lineage:
        return models.Lineage(
            training_data=tuple(models.DataRef(d.uri, d.digest) for d in self.training_data),
            code_repo=self.code_repo, code_commit=self.code_commit, parent_version=self.parent_version,
            feature_pipeline=self.feature_pipeline, tags=self.tags)


class VersionIn(Strict):
    artifact_digest: str
    flavor: models.Flavor | None = None
    trusted: bool = False
    profile: dict[str, Any] | None = None
    sample_digest: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    card: dict[str, Any] = Field(default_factory=dict)
    lineage: LineageIn = Field(default_factory=LineageIn)
    description: str = Field(default="", max_length=10_000)
    owner: str | None = None
    risk_tier: models.RiskTier | None = None


class TransitionIn(Strict):
    event: lifecycle.Event


class AliasIn(Strict):
    version: int = Field(ge=1)


def model_json(model: models.Model) -> dict[str, Any]:
    return {
        "name": model.name, "owner": model.owner, "risk_tier": model.risk_tier.value,
        "description": model.description, "created_by": model.created_by, "created_at": model.created_at,
    }


def version_json(version: models.ModelVersion, aliases: list[str] | None = None) -> dict[str, Any]:
    data = {
        "model": version.model, "version": version.version,
        "artifact_digest": "sha256:" + version.artifact_digest, "artifact_size": version.artifact_size,
        "flavor": version.flavor.value, "artifact_format": version.artifact_format.value,
        "trusted": version.trusted, "signature": models.signature_to_json(version.signature),
        "has_profile": version.has_profile, "metrics": dict(version.metrics), "card": dict(version.card),
        "lineage": models.lineage_to_json(version.lineage), "status": version.status,
        "description": version.description, "created_by": version.created_by,
        "created_at": version.created_at,
    }
    if aliases is not None:
        data["aliases"] = aliases
    return data


def page_json(page: models.Page, encode: Any) -> dict[str, Any]:
    return {"items": [encode(item) for item in page.items], "next_cursor": page.next_cursor}
