"""Cost reports: grouping, price x replica-hours, utilization as a ratio of sums, CSV, totals."""

from __future__ import annotations

import csv
import dataclasses
import io

import pytest

from threadline.capacity import cost, prices
from threadline.capacity.recommend import Requested
from threadline.domain import errors

GI = 1024 ** 3
PRICES = prices.default()
TWO_CORES = Requested(cpu_cores=2.0, memory_bytes=4 * GI, gpu=0, gpu_type=None, replicas_min=1, replicas_max=4)
ONE_L4 = Requested(cpu_cores=1.0, memory_bytes=8 * GI, gpu=1, gpu_type="nvidia-l4", replicas_min=1, replicas_max=1)

FRAUD = cost.UsageRecord(deployment="fraud-scorer", environment="production", model="fraud-model", team="risk",
                         replica_hours=100.0, requested=TWO_CORES, cpu_core_hours_used=20.0,
                         memory_gib_hours_used=40.0, predictions=2_000_000, saving_per_month=150.0)
FRAUD_STAGING = cost.UsageRecord(deployment="fraud-scorer", environment="staging", model="fraud-model",
                                 team="risk", replica_hours=50.0, requested=TWO_CORES, cpu_core_hours_used=5.0,
                                 memory_gib_hours_used=10.0, predictions=0)
VISION = cost.UsageRecord(deployment="vision", environment="production", model="resnet", team="risk",
                          replica_hours=10.0, requested=ONE_L4, cpu_core_hours_used=9.0,
                          memory_gib_hours_used=60.0, predictions=10_000, saving_per_month=None)
CHURN = cost.UsageRecord(deployment="churn", environment="production", model="churn-model", team="growth",
                         replica_hours=10.0, requested=TWO_CORES, cpu_core_hours_used=1.0,
                         memory_gib_hours_used=4.0, predictions=1_000, saving_per_month=20.0)
ALL = [FRAUD, FRAUD_STAGING, VISION, CHURN]


def test_by_deployment_one_row_per_deployment_and_environment_dearest_first() -> None:
    rows = cost.report(ALL, PRICES, by="deployment")
    assert [(row.name, row.environment) for row in rows] == [
        ("fraud-scorer", "production"), ("vision", "production"), ("fraud-scorer", "staging"),
        ("churn", "production")]
    fraud = rows[0]
    assert fraud.cost == pytest.approx(100 * (2 * 0.04 + 4 * 0.005))   # 10.00 USD
    assert fraud.cost_per_1000 == pytest.approx(10.0 / 2_000_000 * 1000)
    assert fraud.cpu_utilization == pytest.approx(20 / 200)
    assert fraud.memory_utilization == pytest.approx(40 / 400)
    assert fraud.potential_saving == 150.0 and fraud.currency == "USD"


def test_no_predictions_means_no_cost_per_1000_and_no_recommendation_means_no_saving() -> None:
    rows = {(row.name, row.environment): row for row in cost.report(ALL, PRICES, by="deployment")}
    assert rows["fraud-scorer", "staging"].cost_per_1000 is None
    assert rows["fraud-scorer", "staging"].potential_saving is None
    assert rows["vision", "production"].potential_saving is None


def test_gpus_are_priced_by_type() -> None:
    vision = cost.report([VISION], PRICES, by="deployment")[0]
    assert vision.cost == pytest.approx(10 * (0.04 + 8 * 0.005 + 0.80))


def test_by_model_and_team_utilization_is_a_ratio_of_sums() -> None:
    by_model = {row.name: row for row in cost.report(ALL, PRICES, by="model")}
    assert by_model["fraud-model"].deployments == 2 and by_model["fraud-model"].environment is None
    assert by_model["fraud-model"].cpu_utilization == pytest.approx(25 / 300)
    risk = {row.name: row for row in cost.report(ALL, PRICES, by="team")}["risk"]
    assert risk.deployments == 3
    assert risk.cpu_utilization == pytest.approx((20 + 5 + 9) / (200 + 100 + 10))
    assert risk.predictions == 2_010_000 and risk.potential_saving == 150.0


def test_spot_prices_are_lower() -> None:
    on_demand = cost.report(ALL, PRICES, by="team")
    spot = cost.report(ALL, PRICES, by="team", spot=True)
    assert sum(row.cost for row in spot) < 0.5 * sum(row.cost for row in on_demand)


def test_the_total_adds_up_the_rows() -> None:
    rows = cost.report(ALL, PRICES, by="deployment")
    summed = cost.total(rows)
    assert summed.name == "total" and summed.deployments == 4
    assert summed.cost == pytest.approx(sum(row.cost for row in rows))
    assert summed.potential_saving == 170.0
    assert summed.cpu_utilization == pytest.approx((20 + 5 + 9 + 1) / (200 + 100 + 10 + 20))
    empty = cost.total([])
    assert empty.cost == 0 and empty.cpu_utilization is None and empty.cost_per_1000 is None


def test_csv_has_a_header_and_one_line_per_row() -> None:
    rows = cost.report(ALL, PRICES, by="deployment")
    text = cost.to_csv([*rows, cost.total(rows)])
    read = list(csv.DictReader(io.StringIO(text)))
    assert list(read[0]) == list(cost.CSV_COLUMNS)
    assert [line["name"] for line in read] == ["fraud-scorer", "vision", "fraud-scorer", "churn", "total"]
    assert read[0]["cost"] == "10.0" and read[0]["cpu_utilization"] == "0.1"
    assert read[2]["cost_per_1000"] == "" and read[2]["potential_saving"] == ""
    assert read[4]["environment"] == ""
    assert cost.to_csv([]) == ",".join(cost.CSV_COLUMNS) + "\n"


def test_no_records_is_an_empty_report_and_a_bad_grouping_is_refused() -> None:
    assert cost.report([], PRICES, by="team") == []
    with pytest.raises(errors.InvalidInput, match="^by: cannot group by 'owner'"):
        cost.report(ALL, PRICES, by="owner")  # type: ignore[arg-type]


def test_a_row_as_a_dict_carries_the_derived_figures() -> None:
    row = dataclasses.asdict(cost.report([FRAUD], PRICES, by="deployment")[0])
    assert set(cost.CSV_COLUMNS) <= set(row)
    assert row["cpu_utilization"] == pytest.approx(0.1) and row["cost_per_1000"] == pytest.approx(0.005)
