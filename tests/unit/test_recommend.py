"""Right-sizing from synthetic per-minute samples: cuts, refusals, GPU advice, risk."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone

import pytest

from threadline.capacity import prices, recommend
from threadline.capacity.recommend import MinuteSample, Requested
from threadline.domain import errors

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
MI, GI = 1024 ** 2, 1024 ** 3
WINDOW = (T0, T0 + timedelta(hours=2))
PRICES = prices.default()
FAT = Requested(cpu_cores=2.0, memory_bytes=4 * GI, gpu=0, gpu_type=None, replicas_min=4, replicas_max=4)


def sample(minute: int, replica: str = "r0", **values: object) -> MinuteSample:
    fields: dict[str, object] = dict(cpu_cores=0.2, rss_bytes=300 * MI, requests=600, errors=0, p99_ms=20.0,
                                     queue_depth=0.0, batch_rows=None, gpu_util=None, gpu_memory_bytes=None)
    return MinuteSample(minute=T0 + timedelta(minutes=minute), replica=replica, **{**fields, **values})


def busy_then_quiet(minutes: int = 120, replicas: int = 4, **values: object) -> list[MinuteSample]:
    """An hour at 10 requests/s per replica, then an hour at 2.5; a CPU burst in every 20 samples."""
    found = []
    for minute in range(minutes):
        for k in range(replicas):
            burst = (minute * replicas + k) % 20 == 0
            found.append(sample(minute, f"r{k}", cpu_cores=1.0 if burst else 0.2,
                                rss_bytes=400 * MI if (minute, k) == (5, 0) else 300 * MI,
                                requests=600 if minute < 60 else 150, **values))
    return found


def run(samples: list[MinuteSample], requested: Requested = FAT, slo: float | None = 50.0,
        table: prices.PriceTable = PRICES, **options: object) -> recommend.Recommendation:
    return recommend.recommend(samples, requested, slo_p99_ms=slo, prices=table, now_window=WINDOW,
                               **options)  # type: ignore[arg-type]


def test_an_over_provisioned_deployment_gets_cut_requests_and_a_saving() -> None:
    found = run(busy_then_quiet())
    assert found.cpu_cores == 0.25          # p90 0.2 cores + 15% = 0.23 -> 250m
    assert found.memory_bytes == 512 * MI   # peak 400Mi + 15% = 460Mi -> 512Mi
    assert (found.replicas_min, found.replicas_max) == (1, 5)  # p10 10 rps, peak 40 rps x 1.2, 10 rps each
    # before: 4 replicas x (2 x 0.04 + 4 x 0.005); after: 2.5 replicas on average x (0.25 x 0.04 + 0.5 x 0.005)
    assert found.saving_per_month == pytest.approx((0.4 - 2.5 * 0.0125) * 730, abs=0.01)
    assert found.risk == "low: p99 stayed within the SLO at the measured peak (20 ms of 50 ms)"
    assert found.gpu is None
    assert found.changes() == {"cpu_cores": (2.0, 0.25), "memory_bytes": (4 * GI, 512 * MI),
                               "replicas_min": (4, 1), "replicas_max": (4, 5)}


def test_the_evidence_names_the_window_and_the_percentiles() -> None:
    evidence = run(busy_then_quiet()).evidence
    assert evidence["window_start"] == "2025-03-01T00:00:00+00:00"
    assert evidence["window_end"] == "2025-03-01T02:00:00+00:00"
    assert evidence["minutes"] == 120 and evidence["replicas_seen"] == 4
    assert (evidence["cpu_p50"], evidence["cpu_p90"], evidence["cpu_max"]) == (0.2, 0.2, 1.0)
    assert evidence["rss_max"] == 400 * MI and evidence["rss_p50"] == 300 * MI
    assert evidence["peak_rps"] == 40.0 and evidence["capacity_rps_per_replica"] == 10.0
    assert evidence["p99_at_peak_ms"] == 20.0 and evidence["slo_breach_minutes"] == 0


def test_a_right_sized_deployment_has_no_changes() -> None:
    fitted = Requested(cpu_cores=0.25, memory_bytes=512 * MI, gpu=0, gpu_type=None, replicas_min=1, replicas_max=5)
    found = run(busy_then_quiet(), fitted)
    assert found.changes() == {}


def test_cpu_and_memory_have_floors() -> None:
    idle = [sample(m, cpu_cores=0.001, rss_bytes=10 * MI) for m in range(120)]
    found = run(idle)
    assert found.cpu_cores == 0.05 and found.memory_bytes == 64 * MI


@pytest.mark.parametrize("samples", [[], [sample(m) for m in range(30)]])
def test_too_little_data_is_refused_with_the_count(samples: list[MinuteSample]) -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        run(samples)
    assert str(caught.value) == f"not enough data: {len({s.minute for s in samples})} minutes of 60 needed"


def test_only_distinct_minutes_inside_the_window_count() -> None:
    many_replicas = [sample(m, f"r{k}") for m in range(30) for k in range(8)]
    outside = [sample(m) for m in range(-90, 0)] + [sample(m) for m in range(120, 200)]
    with pytest.raises(errors.InvalidInput, match="^not enough data: 30 minutes of 60 needed$"):
        run(many_replicas + outside)
    assert run([sample(m) for m in range(30)], minimum_minutes=30).evidence["minutes"] == 30


def test_a_replica_that_died_midway_only_ends_its_samples() -> None:
    found = busy_then_quiet()
    survivors = [s for s in found if not (s.replica == "r3" and s.minute >= T0 + timedelta(minutes=30))]
    evidence = run(survivors).evidence
    assert evidence["replicas_seen"] == 4
    assert 3 < float(evidence["average_replicas"]) < 4  # type: ignore[arg-type]


def test_an_slo_breach_makes_the_risk_high_and_limits_the_capacity() -> None:
    found = busy_then_quiet()
    # at the peak (the first hour) every replica-minute breaches: 600 requests/min is too many
    breached = [dataclasses.replace(s, p99_ms=80.0) if s.minute < T0 + timedelta(minutes=60) else s for s in found]
    result = run(breached)
    assert result.risk.startswith("high: SLO breached in 60 minutes")
    assert result.evidence["capacity_rps_per_replica"] == 2.5  # only the quiet hour met the SLO
    assert result.replicas_max == 20  # 40 rps / 2.5 per replica x 1.2 = 19.2


def test_little_headroom_at_the_peak_makes_the_risk_medium() -> None:
    found = [dataclasses.replace(s, p99_ms=45.0) for s in busy_then_quiet()]
    assert run(found).risk == "medium: little headroom: p99 at the measured peak was 45 ms of the 50 ms SLO"


def test_without_an_slo_the_capacity_is_the_observed_peak_and_the_risk_medium() -> None:
    found = run([dataclasses.replace(s, p99_ms=500.0) for s in busy_then_quiet()], slo=None)
    assert found.evidence["capacity_rps_per_replica"] == 10.0
    assert found.risk.startswith("medium: no latency SLO")


def test_without_traffic_the_replica_bounds_stay_as_requested() -> None:
    silent = [sample(m, requests=0, p99_ms=None) for m in range(120)]
    found = run(silent)
    assert (found.replicas_min, found.replicas_max) == (4, 4)
    assert found.evidence["capacity_rps_per_replica"] is None


def test_scale_to_zero_is_kept() -> None:
    found = run(busy_then_quiet(), dataclasses.replace(FAT, replicas_min=0))
    assert found.replicas_min == 0


GPU_A100 = Requested(cpu_cores=4, memory_bytes=16 * GI, gpu=1, gpu_type="nvidia-a100-40gb", replicas_min=1,
                     replicas_max=1)


def gpu_samples(memory_gib: float, util: float) -> list[MinuteSample]:
    return [sample(m, cpu_cores=1.0, rss_bytes=4 * GI, gpu_util=util, gpu_memory_bytes=int(memory_gib * GI))
            for m in range(120)]


def test_a_model_that_fits_a_smaller_gpu_is_told_which() -> None:
    found = run(gpu_samples(6, 0.5), GPU_A100)
    assert found.gpu is not None and found.gpu.startswith("fits nvidia-t4 (needs 7.2 GiB")
    assert "time-slicing" not in found.gpu
    # 3.00 -> 0.35 per hour for the GPU alone, plus the CPU and memory cut
    assert found.saving_per_month > (3.00 - 0.35) * 730


def test_the_cheapest_fit_may_be_a_mig_slice_of_another_type() -> None:
    found = run(gpu_samples(30, 0.5), GPU_A100)  # 36 GiB: half an A100-80GB (2.00/h) beats a whole A100-40GB
    assert found.gpu is not None and found.gpu.startswith("fits MIG 3g.40gb of nvidia-a100-80gb")


def test_a_mig_slice_is_proposed_when_it_is_the_cheapest_fit() -> None:
    table = prices.parse(
        "cpuHour: {onDemand: 0.04}\nmemoryGibHour: {onDemand: 0.005}\n"
        "gpuHour: {nvidia-a100-40gb: {onDemand: 3.0}, nvidia-l4: {onDemand: 0.8}}\n"
        "gpuMemoryGib: {nvidia-a100-40gb: 40, nvidia-l4: 24}\n"
        "migProfiles:\n  nvidia-a100-40gb:\n    1g.5gb: {memoryGib: 5, fraction: 0.1429}\n"
        "    2g.10gb: {memoryGib: 10, fraction: 0.3333}\n", "prices.yaml")
    found = run(gpu_samples(3, 0.5), GPU_A100, table=table)
    assert found.gpu is not None and found.gpu.startswith("fits MIG 1g.5gb of nvidia-a100-40gb")


def test_a_lightly_used_gpu_can_be_time_sliced() -> None:
    found = run(gpu_samples(50, 0.12), dataclasses.replace(GPU_A100, gpu_type="nvidia-a100-80gb"))
    assert found.gpu is not None
    assert "no cheaper GPU or MIG slice fits" in found.gpu  # 60 GiB needed: only 80 GB GPUs fit
    assert "peak GPU utilization 12% is under 30%" in found.gpu and "time-slicing" in found.gpu


def test_no_gpu_data_is_said_and_never_read_as_zero() -> None:
    found = run(busy_then_quiet(), dataclasses.replace(FAT, gpu=1, gpu_type="nvidia-a100-40gb"))
    assert found.gpu is not None and found.gpu.startswith("no GPU data")
    unchanged = run(busy_then_quiet())  # the same deployment without a GPU saves the same
    assert found.saving_per_month == pytest.approx(unchanged.saving_per_month + 3.0 * (4 - 2.5) * 730, abs=0.02)


def test_a_bad_sample_is_refused_by_field() -> None:
    with pytest.raises(errors.InvalidInput, match="^cpu_cores: must be zero or more"):
        sample(0, cpu_cores=-1.0)
    with pytest.raises(errors.InvalidInput, match="^gpu_util: must be between 0 and 1"):
        sample(0, gpu_util=1.5)


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="before it starts"):
        recommend.recommend([], FAT, slo_p99_ms=None, prices=PRICES, now_window=(WINDOW[1], WINDOW[0]))


@pytest.mark.parametrize(("cores", "text"), [(0.25, "250m"), (2.0, "2"), (1.5, "1500m"), (0.05, "50m"), (1, "1")])
def test_cpu_text_is_a_kubernetes_quantity(cores: float, text: str) -> None:
    assert recommend.cpu_text(cores) == text


@pytest.mark.parametrize(("size", "text"), [(512 * MI, "512Mi"), (2 * GI, "2Gi"), (1536 * MI, "1536Mi"),
                                            (64 * MI, "64Mi"), (3 * 1024, "3Ki"), (1000, "1000")])
def test_memory_text_is_a_kubernetes_quantity(size: int, text: str) -> None:
    assert recommend.memory_text(size) == text


def test_times_without_a_zone_are_refused() -> None:
    with pytest.raises(errors.InvalidInput, match="^minute: must be a time-zone-aware"):
        dataclasses.replace(sample(0), minute=datetime(2025, 3, 1))
    with pytest.raises(errors.InvalidInput, match="^now_window: "):
        recommend.recommend([], FAT, slo_p99_ms=None, prices=PRICES,
                            now_window=(datetime(2025, 3, 1), datetime(2025, 3, 2)))


def test_no_samples_are_refused_even_when_no_minimum_is_asked() -> None:
    with pytest.raises(errors.InvalidInput, match="^not enough data: 0 minutes of 1 needed$"):
        run([], minimum_minutes=0)


def test_the_gpu_part_of_the_saving_is_shown_apart() -> None:
    found = run(gpu_samples(6, 0.5), GPU_A100)  # one replica throughout: A100 3.00/h -> T4 0.35/h
    assert found.evidence["gpu_saving_per_month"] == pytest.approx((3.00 - 0.35) * 730, abs=0.01)
    assert run(busy_then_quiet()).evidence["gpu_saving_per_month"] == 0.0
