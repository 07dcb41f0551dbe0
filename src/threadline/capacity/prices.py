"""The price table: what a CPU-hour, a GiB-hour and an hour of each GPU type cost.

Every money figure Threadline shows (a recommendation's saving, a cost report) comes from one
table, so a team that pays its own rates overrides one YAML file and every figure follows.
The built-in ``default-prices.yaml`` holds typical public-cloud list prices: good enough to
rank deployments by cost, not an invoice. The table is checked like every other YAML file we
read (``gitops.documents.load_one``): unknown keys, negative prices and bad YAML are refused
with ``{source}:{line}: {field}: {what}`` lines, so a typo never prices a GPU at zero.

YAML keys are camelCase like the rest of Threadline's documents (``cpuHour``, ``onDemand``);
Python attributes are snake_case. GPU types are free-form names (``nvidia-l4``), the same in
every section of the table.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic.alias_generators import to_camel

from threadline.domain import errors
from threadline.gitops import documents

if TYPE_CHECKING:  # recommend imports this module; the annotation alone needs the type
    from threadline.capacity import recommend

DEFAULT_SOURCE = "default-prices.yaml"
HOURS_PER_MONTH = 730.0
"""365 days x 24 h / 12: the month cloud providers bill by, so monthly figures match theirs."""
GIB = 1024 ** 3

GpuType = Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")]


class _Schema(BaseModel):
    # strict: a price is a number, never the string "0.04"; inf and NaN are no prices at all
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              alias_generator=to_camel, populate_by_name=True)


class Price(_Schema):
    """One rate in the table's currency. No ``spot`` means the resource is not sold as spot."""

    on_demand: float = Field(ge=0)
    spot: float | None = Field(None, ge=0)

    def rate(self, spot: bool) -> float:
        """The spot rate when asked and offered, else on demand (what one would actually pay)."""
        return self.spot if spot and self.spot is not None else self.on_demand


class MigProfile(_Schema):
    """A Multi-Instance GPU slice: its memory, and the share of the GPU's price it costs.

    ``fraction`` is 1 / (the most instances of this profile one GPU holds), so slices that fill
    a GPU add up to its price: an A100-40GB holds seven ``1g.5gb`` (1/7) but three ``2g.10gb``.
    """

    memory_gib: float = Field(gt=0)
    fraction: float = Field(gt=0, le=1)


class PriceTable(_Schema):
    api_version: Literal["threadline/v1"] = "threadline/v1"
    kind: Literal["PriceTable"] = "PriceTable"
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, shown with every figure.")
    cpu_hour: Price = Field(description="One core (vCPU) for one hour.")
    memory_gib_hour: Price = Field(description="One GiB of memory for one hour.")
    gpu_hour: dict[GpuType, Price] = Field(default_factory=dict, description="One whole GPU for one hour, by type.")
    default_gpu: GpuType | None = Field(
        None, description="The type priced for a deployment that asks for GPUs without naming a type.")
    gpu_memory_gib: dict[GpuType, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="Memory of one GPU, by type: what a model must fit in.")
    mig_profiles: dict[GpuType, dict[str, MigProfile]] = Field(
        default_factory=dict, description="The MIG slices each GPU type can be cut into.")

    @field_validator("default_gpu")
    @classmethod
    def _default_is_priced(cls, value: str | None, info: ValidationInfo) -> str | None:
        priced = info.data.get("gpu_hour")
        if value is not None and priced is not None and value not in priced:
            raise ValueError(f"{value!r} has no price: add it under gpuHour")
        return value

    @field_validator("gpu_memory_gib", "mig_profiles")
    @classmethod
    def _types_are_priced(cls, value: dict[str, object], info: ValidationInfo) -> dict[str, object]:
        priced = info.data.get("gpu_hour")
        unpriced = sorted(set(value) - set(priced)) if priced is not None else []
        if unpriced:
            raise ValueError(f"GPU types without a price: {', '.join(unpriced)}; add them under gpuHour")
        return value

    @model_validator(mode="after")
    def _slices_fit(self) -> PriceTable:
        for gpu, profiles in self.mig_profiles.items():
            memory = self.gpu_memory_gib.get(gpu)
            if memory is None:
                raise ValueError(f"migProfiles.{gpu}: give the GPU's memory under gpuMemoryGib")
            too_big = [name for name, profile in profiles.items() if profile.memory_gib > memory]
            if too_big:
                raise ValueError(f"migProfiles.{gpu}: {', '.join(too_big)} larger than the GPU's {memory:g} GiB")
        return self


def parse(text: str, source: str) -> PriceTable:
    """A price table from YAML text, or InvalidInput naming ``source``, line and field."""
    return documents.load_one(text, source, PriceTable, what="a price table")


def default_text() -> str:
    return resources.files("threadline.capacity").joinpath(DEFAULT_SOURCE).read_text("utf-8")


def default() -> PriceTable:
    """The built-in list prices: defaults for ranking and estimates, meant to be overridden."""
    return parse(default_text(), DEFAULT_SOURCE)


def gpu_rate(table: PriceTable, gpu_type: str | None, *, spot: bool = False) -> float:
    """One GPU of ``gpu_type`` (or the table's default type) for one hour.

    An unknown type is an error rather than zero: a silent zero would make the most expensive
    deployments look free.
    """
    chosen = gpu_type or table.default_gpu
    if chosen is None:
        raise errors.InvalidInput("the deployment asks for GPUs without a type and the price table "
                                  "has no defaultGpu", field="gpuHour")
    price = table.gpu_hour.get(chosen)
    if price is None:
        known = ", ".join(sorted(table.gpu_hour)) or "none"
        raise errors.InvalidInput(f"no price for GPU type {chosen!r} (priced: {known})", field="gpuHour")
    return price.rate(spot)


def hourly(table: PriceTable, requested: recommend.Requested, *, spot: bool = False) -> float:
    """What one replica costs per hour for what it requests (requests are what is paid for,
    whatever is used)."""
    cost = (requested.cpu_cores * table.cpu_hour.rate(spot)
            + requested.memory_bytes / GIB * table.memory_gib_hour.rate(spot))
    if requested.gpu > 0:
        cost += requested.gpu * gpu_rate(table, requested.gpu_type, spot=spot)
    return cost
