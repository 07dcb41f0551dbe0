"""The price table: the packaged defaults, refusals by line, and what a replica-hour costs."""

from __future__ import annotations

import pytest

from threadline.capacity import prices
from threadline.capacity.recommend import Requested
from threadline.domain import errors

GI = 1024 ** 3
MINIMAL = """\
cpuHour: {onDemand: 0.04}
memoryGibHour: {onDemand: 0.005}
"""


def refusal(text: str) -> str:
    with pytest.raises(errors.InvalidInput) as caught:
        prices.parse(text, "prices.yaml")
    return str(caught.value)


def test_the_defaults_load_from_the_package_and_say_they_are_defaults() -> None:
    table = prices.default()
    assert table.currency == "USD"
    assert table.cpu_hour.on_demand == 0.04 and table.memory_gib_hour.on_demand == 0.005
    assert set(table.gpu_hour) == {"nvidia-t4", "nvidia-l4", "nvidia-a10g", "nvidia-a100-40gb",
                                   "nvidia-a100-80gb", "nvidia-h100-80gb"}
    assert set(table.gpu_memory_gib) == set(table.gpu_hour)
    for price in [table.cpu_hour, table.memory_gib_hour, *table.gpu_hour.values()]:
        assert price.spot is not None and 0.25 <= price.spot / price.on_demand <= 0.45
    assert set(table.mig_profiles["nvidia-a100-40gb"]) >= {"1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"}
    assert "DEFAULTS TO OVERRIDE" in prices.default_text()
    assert "2025" in prices.default_text()


def test_gpus_get_dearer_with_memory_in_the_defaults() -> None:
    table = prices.default()
    by_price = sorted(table.gpu_hour, key=lambda gpu: table.gpu_hour[gpu].on_demand)
    assert by_price[0] == "nvidia-t4" and by_price[-1] == "nvidia-h100-80gb"


def test_a_minimal_table_takes_defaults_for_the_rest() -> None:
    table = prices.parse(MINIMAL, "prices.yaml")
    assert table.currency == "USD" and table.gpu_hour == {} and table.cpu_hour.spot is None


def test_an_unknown_key_is_refused_with_its_line_and_a_hint() -> None:
    text = MINIMAL + "gpuHour:\n  nvidia-t4: {onDemand: 0.35}\ngpuMemoryGb: {nvidia-t4: 16}\n"
    assert refusal(text) == "prices.yaml:5: gpuMemoryGb: unknown field; did you mean gpuMemoryGib?"


def test_a_snake_case_key_is_refused_pointing_at_the_camel_case_one() -> None:
    text = MINIMAL.replace("memoryGibHour", "memory_gib_hour")
    assert "prices.yaml:2: memory_gib_hour: unknown field; did you mean memoryGibHour?" in refusal(text)


def test_an_unknown_key_inside_a_price_is_refused_with_its_line() -> None:
    text = MINIMAL + "gpuHour:\n  nvidia-t4:\n    onDemand: 0.35\n    spott: 0.1\n"
    assert refusal(text) == "prices.yaml:6: gpuHour.nvidia-t4.spott: unknown field"


def test_a_negative_price_is_refused_with_its_line() -> None:
    text = MINIMAL + "gpuHour:\n  nvidia-t4: {onDemand: 0.35}\n  nvidia-l4: {onDemand: 0.8, spot: -0.2}\n"
    assert refusal(text) == ("prices.yaml:5: gpuHour.nvidia-l4.spot: "
                             "input should be greater than or equal to 0, not -0.2")


def test_every_problem_is_reported_at_once() -> None:
    text = "cpuHour: {onDemand: -1}\nmemoryGibHour: {onDemand: '0.005'}\n"
    assert refusal(text).splitlines() == [
        "prices.yaml:1: cpuHour.onDemand: input should be greater than or equal to 0, not -1",
        'prices.yaml:2: memoryGibHour.onDemand: input should be a valid number, not "0.005"',
    ]


def test_bad_yaml_and_a_non_mapping_are_refused_with_a_line() -> None:
    assert refusal(MINIMAL + "gpuHour: {nvidia-t4: [\n").startswith("prices.yaml:4: invalid YAML")
    assert refusal("- 1\n") == "prices.yaml:1: a price table must be a mapping, not a list"
    assert refusal("cpuHour: {onDemand: .nan}\nmemoryGibHour: {onDemand: 0}\n") == (
        "prices.yaml:1: cpuHour.onDemand: input should be a finite number, not NaN")


def test_gpu_sections_must_name_priced_types() -> None:
    assert refusal(MINIMAL + "gpuMemoryGib: {nvidia-t4: 16}\n") == (
        "prices.yaml:3: gpuMemoryGib: GPU types without a price: nvidia-t4; add them under gpuHour")
    assert refusal(MINIMAL + "defaultGpu: nvidia-t4\n") == (
        "prices.yaml:3: defaultGpu: 'nvidia-t4' has no price: add it under gpuHour")


def test_a_mig_slice_larger_than_its_gpu_is_refused() -> None:
    text = MINIMAL + ("gpuHour: {nvidia-a100-40gb: {onDemand: 3}}\ngpuMemoryGib: {nvidia-a100-40gb: 40}\n"
                      "migProfiles:\n  nvidia-a100-40gb:\n    9g.90gb: {memoryGib: 90, fraction: 1}\n")
    assert "9g.90gb larger than the GPU's 40 GiB" in refusal(text)


def test_an_hour_of_a_replica_costs_what_it_requests() -> None:
    table = prices.default()
    small = Requested(cpu_cores=0.5, memory_bytes=2 * GI, gpu=0, gpu_type=None, replicas_min=1, replicas_max=1)
    assert prices.hourly(table, small) == pytest.approx(0.5 * 0.04 + 2 * 0.005)
    assert prices.hourly(table, small, spot=True) == pytest.approx(0.5 * 0.013 + 2 * 0.0017)
    gpu = Requested(cpu_cores=1, memory_bytes=GI, gpu=2, gpu_type="nvidia-l4", replicas_min=1, replicas_max=1)
    assert prices.hourly(table, gpu) == pytest.approx(0.04 + 0.005 + 2 * 0.80)


def test_a_gpu_without_a_type_is_priced_as_the_default_type_and_an_unknown_type_is_refused() -> None:
    table = prices.default()
    untyped = Requested(cpu_cores=1, memory_bytes=GI, gpu=1, gpu_type=None, replicas_min=1, replicas_max=1)
    assert prices.hourly(table, untyped) == pytest.approx(0.045 + 0.35)
    with pytest.raises(errors.InvalidInput, match="no price for GPU type 'nvidia-b200'"):
        prices.gpu_rate(table, "nvidia-b200")
    with pytest.raises(errors.InvalidInput, match="without a type"):
        prices.hourly(prices.parse(MINIMAL, "p.yaml"), untyped)


def test_spot_falls_back_to_on_demand_where_no_spot_price_is_given() -> None:
    table = prices.parse(MINIMAL, "prices.yaml")
    assert table.cpu_hour.rate(spot=True) == 0.04
