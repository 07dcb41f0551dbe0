"""Utilization sampling (per replica and minute) and the capacity loop that autoscales from it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from threadline.adapters.serving_metrics import p99_ms
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.capacity.loop import CapacityLoop
from threadline.capacity.sampling import Sampler
from threadline.domain import models
from threadline.gitops.model import Key, Observed, ReplicaReading

MINUTE = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
FRAUD: Key = ("fraud-scorer", "production")
CHURN: Key = ("churn", "production")
MB = 1024 ** 2
INF = math.inf


def at(seconds: float) -> datetime:
    return MINUTE + timedelta(seconds=seconds)


def reading(replica: str, *, cpu: float = 0.0, rss: int = 100 * MB, requests: float = 0.0, errors: float = 0.0,
            latency: float = 0.0, buckets: dict[float, float] | None = None, queue: float = 0.0,
            batch_rows: float = 0.0, batches: float = 0.0, gpu_util: float | None = None,
            gpu_memory: int | None = None) -> ReplicaReading:
    histogram = buckets if buckets is not None else {INF: requests}
    return ReplicaReading(replica=replica, cpu_seconds=cpu, rss_bytes=rss, requests=requests, errors=errors,
                          latency_seconds=latency, latency_buckets=tuple(sorted(histogram.items())),
                          queue_depth=queue, batch_rows=batch_rows, batches=batches, gpu_util=gpu_util,
                          gpu_memory_bytes=gpu_memory)


class Runtime:
    """Scripted readings per deployment; ``observe``/``scale`` keep a replica count per deployment."""

    def __init__(self) -> None:
        self.current: dict[Key, list[ReplicaReading]] = {}
        self.failing: set[Key] = set()
        self.replicas: dict[Key, int] = {}
        self.scaled: list[tuple[Key, int]] = []
        self.scale_fails = False
        self.read: list[Key] = []

    def readings(self, key: Key) -> list[ReplicaReading]:
        self.read.append(key)
        if key in self.failing:
            raise RuntimeError("metrics endpoint did not answer")
        return list(self.current.get(key, []))

    def observe(self) -> dict[Key, Observed]:
        return {key: Observed(key=key, stable=None, canary=None, canary_weight=0, replicas=count, ready=count)
                for key, count in self.replicas.items()}

    def scale(self, key: Key, replicas: int) -> None:
        if self.scale_fails:
            raise RuntimeError("port 8080 is in use")
        self.scaled.append((key, replicas))
        self.replicas[key] = replicas


class Clock:
    def __init__(self) -> None:
        self.time = MINUTE

    def now(self) -> datetime:
        return self.time


@pytest.fixture
def store(tmp_path: Path) -> SqlMetadataStore:
    return SqlMetadataStore(f"sqlite:///{tmp_path}/db.sqlite")


def sampler(store: SqlMetadataStore, runtime: Runtime, retention: timedelta = timedelta(days=30)) -> Sampler:
    return Sampler(store, runtime, retention=retention, p99=p99_ms)


def rows(store: SqlMetadataStore, key: Key, start: datetime = MINUTE - timedelta(days=60),
         end: datetime = MINUTE + timedelta(days=1)) -> list[models.MinuteSample]:
    with store.reading() as tx:
        return tx.utilization(key[0], key[1], start, end)


# --- Sampler -------------------------------------------------------------------------------------------


def test_a_finished_minute_becomes_one_row_per_replica_from_the_differences(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    # 1000 slow requests before the minute: the cumulative histogram's p99 is 1000 ms, the minute's is 100 ms.
    runtime.current[FRAUD] = [
        reading("r1", cpu=1.0, rss=100 * MB, requests=1000, errors=1, queue=2, batch_rows=20, batches=10,
                buckets={0.01: 0, 0.1: 0, 0.5: 0, 1.0: 1000, INF: 1000}),
        reading("r2", cpu=4.0, rss=300 * MB, requests=0, batch_rows=0, batches=0)]
    assert sample.take([FRAUD], at(10)) == {}  # the first reading is only a baseline
    runtime.current[FRAUD] = [
        reading("r1", cpu=1.5, rss=150 * MB, requests=1100, errors=3, queue=5, batch_rows=140, batches=50,
                buckets={0.01: 50, 0.1: 99, 0.5: 100, 1.0: 1100, INF: 1100}),
        reading("r2", cpu=6.0, rss=250 * MB, requests=7, batch_rows=7, batches=7)]
    this_round = sample.take([FRAUD], at(20))
    assert [(s, before.replica, after.replica) for s, before, after in this_round[FRAUD]] == [
        (10.0, "r1", "r1"), (10.0, "r2", "r2")]
    assert rows(store, FRAUD) == []  # the minute is still open
    runtime.current[FRAUD] = [
        reading("r1", cpu=2.0, rss=90 * MB, requests=1200, errors=3, batch_rows=150, batches=60,
                buckets={0.01: 60, 0.1: 199, 0.5: 200, 1.0: 1200, INF: 1200}),
        reading("r2", cpu=7.0, rss=250 * MB, requests=9, batch_rows=9, batches=9)]
    sample.take([FRAUD], at(65))

    stored = rows(store, FRAUD)
    assert [(r.minute, r.replica) for r in stored] == [(MINUTE, "r1"), (MINUTE, "r2")]  # 12:01 is still open
    r1, r2 = stored
    assert r1.cpu_cores == pytest.approx(0.05)       # 0.5 CPU seconds over 10 s
    assert r1.rss_bytes == 150 * MB                  # the peak, not the last
    assert (r1.requests, r1.errors) == (100, 2)
    assert r1.p99_ms == pytest.approx(100.0)         # from the minute's bucket differences
    assert r1.queue_depth == 5
    assert r1.batch_rows == pytest.approx(3.0)       # 120 rows over 40 calls
    assert r1.gpu_util is None and r1.gpu_memory_bytes is None  # absent, never zero
    assert r2.cpu_cores == pytest.approx(0.2)
    assert (r2.rss_bytes, r2.requests, r2.errors, r2.batch_rows) == (250 * MB, 7, 0, pytest.approx(1.0))


def test_the_next_minute_is_written_once_it_is_over(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    for seconds, requests in ((10, 0), (20, 10), (65, 40), (75, 50), (125, 60)):
        runtime.current[FRAUD] = [reading("r1", cpu=seconds / 100, requests=requests)]
        sample.take([FRAUD], at(seconds))
    stored = rows(store, FRAUD)
    assert [(r.minute, r.requests) for r in stored] == [(at(0), 10), (at(60), 40)]  # 20 -> 65, 65 -> 75
    assert stored[1].cpu_cores == pytest.approx(0.01)


def test_a_minute_without_requests_has_no_p99_and_no_batch_size(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    for seconds in (10, 20, 61):
        runtime.current[FRAUD] = [reading("r1", cpu=1.0, requests=5, batch_rows=5, batches=5)]
        sample.take([FRAUD], at(seconds))
    (row,) = rows(store, FRAUD)
    assert (row.requests, row.p99_ms, row.batch_rows, row.cpu_cores) == (0, None, None, 0.0)


def test_gpu_figures_are_the_mean_utilization_and_peak_memory_when_present(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    script = [(0, None, None), (10, 0.2, 2 * MB), (20, 0.6, 6 * MB), (30, None, None), (61, 0.9, 1 * MB)]
    for seconds, util, memory in script:
        runtime.current[FRAUD] = [reading("r1", cpu=seconds / 10, gpu_util=util, gpu_memory=memory)]
        sample.take([FRAUD], at(seconds))
    (row,) = rows(store, FRAUD)
    assert row.gpu_util == pytest.approx(0.4)  # readings without GPU data do not count as 0
    assert row.gpu_memory_bytes == 6 * MB


def test_counters_going_backwards_skip_that_interval(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    runtime.current[FRAUD] = [reading("r1", cpu=50.0, requests=1000, errors=10, batch_rows=900, batches=300)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = [reading("r1", cpu=0.2, requests=3, errors=0, batch_rows=3, batches=1)]  # restarted
    assert sample.take([FRAUD], at(20)) == {}
    runtime.current[FRAUD] = [reading("r1", cpu=0.7, requests=13, errors=1, batch_rows=13, batches=5)]
    assert FRAUD in sample.take([FRAUD], at(30))  # the restarted replica's reading is the new baseline
    sample.take([FRAUD], at(61))
    (row,) = rows(store, FRAUD)
    assert row.cpu_cores == pytest.approx(0.05)
    assert (row.requests, row.errors, row.batch_rows) == (10, 1, pytest.approx(2.5))
    assert row.cpu_cores >= 0 and row.requests >= 0 and row.errors >= 0


def test_a_minute_whose_only_interval_was_a_restart_has_no_row(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    runtime.current[FRAUD] = [reading("r1", cpu=50.0, requests=1000)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = [reading("r1", cpu=0.2, requests=3)]
    sample.take([FRAUD], at(20))
    sample.take([FRAUD], at(65))
    assert rows(store, FRAUD) == []


def test_an_errors_counter_going_backwards_alone_is_skipped_too(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    # A replica restarted shortly after it started: the new process already did more work than the old one,
    # but fewer of its requests failed.
    runtime.current[FRAUD] = [reading("r1", cpu=2.0, requests=3, errors=3, batches=3)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = [reading("r1", cpu=2.5, requests=5, errors=0, batches=5)]
    sample.take([FRAUD], at(20))
    sample.take([FRAUD], at(61))  # flushes the minute
    assert all(row.errors >= 0 for row in rows(store, FRAUD))


def test_a_replica_that_disappears_ends_its_samples_and_the_others_continue(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    runtime.current[FRAUD] = [reading("r1", cpu=0.0, requests=0), reading("r2", cpu=0.0, requests=0)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = [reading("r1", cpu=1.0, requests=10), reading("r2", cpu=2.0, requests=20)]
    sample.take([FRAUD], at(20))
    runtime.current[FRAUD] = [reading("r1", cpu=2.0, requests=30)]  # r2 is gone
    this_round = sample.take([FRAUD], at(30))
    assert [after.replica for _s, _b, after in this_round[FRAUD]] == ["r1"]
    runtime.current[FRAUD] = [reading("r1", cpu=3.0, requests=40)]
    sample.take([FRAUD], at(65))
    runtime.current[FRAUD] = [reading("r1", cpu=4.0, requests=50)]
    sample.take([FRAUD], at(125))

    stored = rows(store, FRAUD)
    assert [(r.minute, r.replica, r.requests) for r in stored] == [
        (at(0), "r1", 30), (at(0), "r2", 20), (at(60), "r1", 10)]


def test_a_replica_that_comes_back_starts_from_a_new_baseline(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    runtime.current[FRAUD] = [reading("r1", cpu=1.0, requests=10)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = []
    assert sample.take([FRAUD], at(20)) == {}
    runtime.current[FRAUD] = [reading("r1", cpu=5.0, requests=500)]  # not an interval from 10 s
    assert sample.take([FRAUD], at(30)) == {}
    runtime.current[FRAUD] = [reading("r1", cpu=6.0, requests=510)]
    sample.take([FRAUD], at(40))
    sample.take([FRAUD], at(61))
    (row,) = rows(store, FRAUD)
    assert row.requests == 10 and row.cpu_cores == pytest.approx(0.1)


def test_a_deployment_whose_readings_fail_does_not_stop_the_others(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    runtime.failing = {FRAUD}
    sample = sampler(store, runtime)
    for seconds in (10, 20, 65):
        runtime.current[CHURN] = [reading("c1", cpu=seconds / 10, requests=seconds)]
        this_round = sample.take([FRAUD, CHURN], at(seconds))
        assert FRAUD not in this_round
    assert FRAUD in runtime.read
    assert rows(store, FRAUD) == []
    assert [(r.replica, r.requests) for r in rows(store, CHURN)] == [("c1", 10)]


def test_samples_of_several_deployments_are_stored_under_each(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    for seconds in (10, 20, 61):
        runtime.current[FRAUD] = [reading("f1", requests=seconds)]
        runtime.current[CHURN] = [reading("c1", requests=2 * seconds)]
        sample.take([FRAUD, CHURN], at(seconds))
    assert [(r.replica, r.requests) for r in rows(store, FRAUD)] == [("f1", 10)]
    assert [(r.replica, r.requests) for r in rows(store, CHURN)] == [("c1", 20)]


def test_readings_at_the_same_instant_add_nothing(store: SqlMetadataStore) -> None:
    runtime = Runtime()
    sample = sampler(store, runtime)
    runtime.current[FRAUD] = [reading("r1", cpu=1.0, requests=1)]
    sample.take([FRAUD], at(10))
    runtime.current[FRAUD] = [reading("r1", cpu=2.0, requests=2)]
    assert sample.take([FRAUD], at(10)) == {}  # no division by zero seconds


def old_row(minute: datetime, replica: str = "r1") -> models.MinuteSample:
    return models.MinuteSample(minute=minute, replica=replica, cpu_cores=0.5, rss_bytes=MB, requests=1, errors=0,
                               p99_ms=10.0, queue_depth=0.0, batch_rows=None)


def test_pruning_removes_rows_older_than_the_retention(store: SqlMetadataStore) -> None:
    with store.writing() as tx:
        tx.put_utilization(*FRAUD, [old_row(MINUTE - timedelta(days=8)), old_row(MINUTE - timedelta(days=6))])
    sample = sampler(store, Runtime(), retention=timedelta(days=7))
    sample.take([FRAUD], MINUTE)
    assert [r.minute for r in rows(store, FRAUD)] == [MINUTE - timedelta(days=6)]


def test_pruning_runs_at_most_once_an_hour(store: SqlMetadataStore) -> None:
    sample = sampler(store, Runtime(), retention=timedelta(days=7))
    sample.take([FRAUD], MINUTE)
    with store.writing() as tx:
        tx.put_utilization(*FRAUD, [old_row(MINUTE - timedelta(days=8))])
    sample.take([FRAUD], MINUTE + timedelta(minutes=59))
    assert len(rows(store, FRAUD)) == 1
    sample.take([FRAUD], MINUTE + timedelta(minutes=60))
    assert rows(store, FRAUD) == []


# --- CapacityLoop ---------------------------------------------------------------------------------------


def document(key: Key = FRAUD, **replicas: Any) -> dict[str, Any]:
    return {"apiVersion": "threadline/v1", "kind": "ModelDeployment",
            "metadata": {"name": key[0], "environment": key[1], "owner": "risk"},
            "spec": {"model": "m", "version": 1,
                     "replicas": {"min": 1, "max": 3, "targetConcurrency": 1, **replicas}}}


def deploy(store: SqlMetadataStore, spec: dict[str, Any], key: Key = FRAUD) -> None:
    with store.writing() as tx:
        tx.put_deployment(models.DeploymentRecord(
            name=key[0], environment=key[1], spec=spec, commit="abc123", status="Synced", reason="",
            differences=(), state={}, updated_at=MINUTE))


def history(store: SqlMetadataStore, key: Key = FRAUD) -> list[models.HistoryRecord]:
    with store.reading() as tx:
        return list(reversed(tx.deployment_history(*key, limit=100)))


class World:
    def __init__(self, store: SqlMetadataStore) -> None:
        self.store = store
        self.runtime = Runtime()
        self.clock = Clock()
        self.loop = CapacityLoop(store, self.runtime, self.clock, sampler(store, self.runtime))

    def round(self, seconds: float, readings: dict[Key, list[ReplicaReading]]) -> None:
        self.clock.time = at(seconds)
        self.runtime.current = readings
        self.loop.round()


def busy(seconds: float, replicas: int = 2, *, per_second: float = 2.5) -> list[ReplicaReading]:
    """Each replica has ``per_second`` requests in flight on average (latency sum grows that fast)."""
    return [reading(f"r{i}", cpu=seconds, requests=10 * seconds, latency=per_second * seconds)
            for i in range(1, replicas + 1)]


def test_load_above_the_target_scales_up_to_the_maximum_and_is_recorded(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document())
    world.runtime.replicas[FRAUD] = 2
    world.round(0, {FRAUD: busy(0)})
    assert world.runtime.scaled == []  # the first round is only a baseline
    world.round(10, {FRAUD: busy(10)})  # 2 replicas x 2.5 in flight: load 5, target 1 per replica
    assert world.runtime.scaled == [(FRAUD, 3)]
    (record,) = history(store)
    assert (record.action, record.outcome, record.commit, record.workload) == ("autoscale", "applied", "", None)
    assert record.evidence["from"] == 2 and record.evidence["to"] == 3
    assert record.evidence["load"] == pytest.approx(5.0)
    assert record.evidence["requests"] == 200 and record.evidence["target_per_replica"] == 1
    assert "capped at maximum 3" in record.reason
    assert record.time == at(10)


def test_queued_requests_count_as_load(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document(max=5))
    world.runtime.replicas[FRAUD] = 1
    world.round(0, {FRAUD: [reading("r1", requests=0)]})
    world.round(10, {FRAUD: [reading("r1", requests=10, latency=10.0, queue=3)]})  # 1 in flight + 3 queued
    assert world.runtime.scaled == [(FRAUD, 4)]


def test_idle_past_idle_after_scales_back_to_the_minimum(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document(idleAfter="30s"))
    world.runtime.replicas[FRAUD] = 2
    world.round(0, {FRAUD: busy(0)})
    world.round(10, {FRAUD: busy(10)})
    assert world.runtime.replicas[FRAUD] == 3
    idle = busy(10, replicas=3)  # no counter moves any more
    for seconds in (20, 30):
        world.round(seconds, {FRAUD: idle})
        assert world.runtime.replicas[FRAUD] == 3, seconds  # not idle long enough; the window holds 3
    world.round(40, {FRAUD: idle})  # 30 s since the last interval with requests
    assert world.runtime.scaled == [(FRAUD, 3), (FRAUD, 1)]
    up, down = history(store)
    assert (down.action, down.outcome) == ("autoscale", "applied")
    assert (down.evidence["from"], down.evidence["to"], down.evidence["requests"]) == (3, 1, 0)
    assert down.reason == "idle for 30s: scale to minimum 1"


def test_a_deployment_with_min_equal_to_max_is_never_scaled(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document(min=2, max=2))
    world.runtime.replicas[FRAUD] = 2
    for seconds in (0, 10, 20):
        world.round(seconds, {FRAUD: busy(seconds, per_second=50.0)})
    for seconds in range(30, 700, 30):
        world.round(seconds, {FRAUD: busy(20)})  # idle for ten minutes
    assert world.runtime.scaled == [] and history(store) == []
    assert FRAUD in world.runtime.read  # still sampled
    assert rows(store, FRAUD)


def test_a_failing_scale_is_recorded_as_failed_and_does_not_raise(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document())
    world.runtime.replicas[FRAUD] = 2
    world.runtime.scale_fails = True
    world.round(0, {FRAUD: busy(0)})
    world.round(10, {FRAUD: busy(10)})
    (record,) = history(store)
    assert (record.action, record.outcome) == ("autoscale", "failed")
    assert (record.evidence["from"], record.evidence["to"]) == (2, 3)
    assert world.runtime.replicas[FRAUD] == 2
    world.runtime.scale_fails = False
    world.round(20, {FRAUD: busy(20)})  # the next round tries again
    assert world.runtime.scaled == [(FRAUD, 3)]
    assert [r.outcome for r in history(store)] == ["failed", "applied"]


def test_a_deployment_the_runtime_does_not_run_is_not_scaled(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document())
    for seconds in (0, 10):
        world.round(seconds, {FRAUD: busy(seconds)})
    assert world.runtime.scaled == [] and history(store) == []


def test_a_removed_deployment_is_neither_sampled_nor_scaled(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, {})
    world.runtime.replicas[FRAUD] = 2
    for seconds in (0, 10):
        world.round(seconds, {FRAUD: busy(seconds)})
    assert world.runtime.read == [] and world.runtime.scaled == []


def test_each_deployment_is_scaled_on_its_own_load(store: SqlMetadataStore) -> None:
    world = World(store)
    deploy(store, document())
    deploy(store, document(CHURN, max=4), CHURN)
    world.runtime.replicas.update({FRAUD: 1, CHURN: 1})
    world.round(0, {FRAUD: busy(0, 1), CHURN: busy(0, 1)})
    world.round(10, {FRAUD: busy(10, 1, per_second=0.5), CHURN: busy(10, 1, per_second=3.5)})
    assert world.runtime.scaled == [(CHURN, 4)]
    assert history(store, FRAUD) == [] and len(history(store, CHURN)) == 1
