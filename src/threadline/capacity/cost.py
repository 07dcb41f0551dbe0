"""Cost reports: what each deployment, model or team costs, how much of it is used, what it could save.

What is paid for is what replicas *request*, for as long as they run; what they use is only
evidence of waste. So cost = price per replica-hour of the request x replica-hours, and
utilization = used / requested, summed before dividing, so a group's utilization weighs its
big deployments as much as they cost (an average of ratios would not). The caller (the
capacity service) totals the samples of a period into one ``UsageRecord`` per deployment;
this module only groups, prices and formats.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Sequence
from typing import Literal

from threadline.capacity import prices as pricing  # ``prices`` is report's keyword
from threadline.capacity import recommend
from threadline.domain import errors

GroupBy = Literal["deployment", "model", "team"]
TOTAL = "total"


@dataclasses.dataclass(frozen=True)
class UsageRecord:
    """One deployment in one environment over the reported period.

    ``saving_per_month`` is its current recommendation's saving, or None without one (too
    little data, or never computed).
    """

    deployment: str
    environment: str
    model: str
    team: str
    replica_hours: float
    requested: recommend.Requested
    cpu_core_hours_used: float
    memory_gib_hours_used: float
    predictions: int
    saving_per_month: float | None = None


@dataclasses.dataclass(frozen=True)
class CostRow:
    """One group of the report. ``environment`` is set when grouping by deployment.

    The requested and used sums are kept so that rows add up (``total``) and utilization
    stays a ratio of sums. ``potential_saving`` is per month (730 h), like the
    recommendations it adds up; None when no deployment in the group has one.
    """

    name: str
    environment: str | None
    deployments: int
    replica_hours: float
    cost: float
    predictions: int
    cpu_core_hours_requested: float
    cpu_core_hours_used: float
    memory_gib_hours_requested: float
    memory_gib_hours_used: float
    potential_saving: float | None
    currency: str

    cost_per_1000: float | None = dataclasses.field(init=False)
    """Cost per 1,000 predictions; None without predictions (not zero, not infinite)."""
    cpu_utilization: float | None = dataclasses.field(init=False)
    memory_utilization: float | None = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        # derived once, as fields, so that dataclasses.asdict (the --json output) carries them
        derived = {"cost_per_1000": self.cost / self.predictions * 1000 if self.predictions else None,
                   "cpu_utilization": _ratio(self.cpu_core_hours_used, self.cpu_core_hours_requested),
                   "memory_utilization": _ratio(self.memory_gib_hours_used, self.memory_gib_hours_requested)}
        for name, value in derived.items():
            object.__setattr__(self, name, value)


def report(records: Iterable[UsageRecord], prices: pricing.PriceTable, *, by: GroupBy,
           spot: bool = False) -> list[CostRow]:
    """One row per deployment (and environment), model or team, the most expensive first."""
    groups: dict[tuple[str, str | None], list[UsageRecord]] = {}
    for record in records:
        groups.setdefault(_key(record, by), []).append(record)
    rows = [_row(name, environment, members, prices, spot) for (name, environment), members in groups.items()]
    return sorted(rows, key=lambda row: (-row.cost, row.name, row.environment or ""))


def total(rows: Sequence[CostRow], currency: str = "USD") -> CostRow:
    """The sum of ``rows`` as one row named ``total``."""
    savings = [row.potential_saving for row in rows if row.potential_saving is not None]
    return CostRow(
        name=TOTAL, environment=None, deployments=sum(row.deployments for row in rows),
        replica_hours=sum(row.replica_hours for row in rows), cost=sum(row.cost for row in rows),
        predictions=sum(row.predictions for row in rows),
        cpu_core_hours_requested=sum(row.cpu_core_hours_requested for row in rows),
        cpu_core_hours_used=sum(row.cpu_core_hours_used for row in rows),
        memory_gib_hours_requested=sum(row.memory_gib_hours_requested for row in rows),
        memory_gib_hours_used=sum(row.memory_gib_hours_used for row in rows),
        potential_saving=sum(savings) if savings else None,
        currency=rows[0].currency if rows else currency)


CSV_COLUMNS = ("name", "environment", "deployments", "replica_hours", "cost", "currency", "predictions",
               "cost_per_1000", "cpu_utilization", "memory_utilization", "cpu_core_hours_requested",
               "cpu_core_hours_used", "memory_gib_hours_requested", "memory_gib_hours_used",
               "potential_saving")


def to_csv(rows: Iterable[CostRow]) -> str:
    """CSV text with a header row; an unknown value (no predictions, no recommendation) is empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in CSV_COLUMNS])
    return out.getvalue()


def _key(record: UsageRecord, by: GroupBy) -> tuple[str, str | None]:
    if by == "deployment":
        return record.deployment, record.environment
    if by == "model":
        return record.model, None
    if by == "team":
        return record.team, None
    raise errors.InvalidInput(f"cannot group by {by!r}: use deployment, model or team", field="by")


def _row(name: str, environment: str | None, members: Sequence[UsageRecord], table: pricing.PriceTable,
         spot: bool) -> CostRow:
    savings = [m.saving_per_month for m in members if m.saving_per_month is not None]
    return CostRow(
        name=name, environment=environment, deployments=len({(m.deployment, m.environment) for m in members}),
        replica_hours=sum(m.replica_hours for m in members),
        cost=sum(pricing.hourly(table, m.requested, spot=spot) * m.replica_hours for m in members),
        predictions=sum(m.predictions for m in members),
        cpu_core_hours_requested=sum(m.requested.cpu_cores * m.replica_hours for m in members),
        cpu_core_hours_used=sum(m.cpu_core_hours_used for m in members),
        memory_gib_hours_requested=sum(m.requested.memory_bytes / pricing.GIB * m.replica_hours for m in members),
        memory_gib_hours_used=sum(m.memory_gib_hours_used for m in members),
        potential_saving=sum(savings) if savings else None,
        currency=table.currency)


def _ratio(used: float, requested: float) -> float | None:
    return used / requested if requested > 0 else None


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 6)  # 0.1 + 0.2 prints as 0.3, and no figure here means a millionth
    return value
