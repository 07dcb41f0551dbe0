"""Utilization of every running deployment, measured and rolled up per replica and minute.

Every ``interval`` seconds the sampler takes each replica's cumulative readings from the
runtime (CPU seconds and RSS from /proc, GPU from NVML, request counters and the latency
histogram from its /metrics) and adds the difference from the previous reading to that
replica's current minute. A finished minute becomes one ``MinuteSample`` row: average cores,
peak RSS, requests, errors, p99 (from the histogram's differences), deepest queue, mean batch
size, GPU figures or None. Counters that go backwards mean the replica restarted: that
interval is skipped. A replica that dies has no next reading, so its samples simply end.

Rows older than the retention setting are pruned once an hour, so storage stays bounded
(one row per replica and minute: about 43,000 per replica and month).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from threadline import ports
from threadline.domain import models
from threadline.gitops.model import Key, ReplicaReading

log = logging.getLogger("threadline.capacity")

PRUNE_EVERY = timedelta(hours=1)


@dataclass
class _Minute:
    """What one replica did in one minute so far."""

    seconds: float = 0.0
    cpu_seconds: float = 0.0
    rss_bytes: int = 0
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    queue_depth: float = 0.0
    batch_rows: float = 0.0
    batches: float = 0.0
    gpu_util: list[float] = field(default_factory=list)
    gpu_memory_bytes: int | None = None

    def add(self, before: ReplicaReading, after: ReplicaReading, seconds: float) -> None:
        self.seconds += seconds
        self.cpu_seconds += after.cpu_seconds - before.cpu_seconds
        self.rss_bytes = max(self.rss_bytes, after.rss_bytes)
        self.requests += after.requests - before.requests
        self.errors += after.errors - before.errors
        earlier = dict(before.latency_buckets)
        for bound, count in after.latency_buckets:
            self.buckets[bound] = self.buckets.get(bound, 0.0) + count - earlier.get(bound, 0.0)
        self.queue_depth = max(self.queue_depth, after.queue_depth)
        self.batch_rows += after.batch_rows - before.batch_rows
        self.batches += after.batches - before.batches
        if after.gpu_util is not None:
            self.gpu_util.append(after.gpu_util)
        if after.gpu_memory_bytes is not None:
            self.gpu_memory_bytes = max(self.gpu_memory_bytes or 0, after.gpu_memory_bytes)

    def sample(self, minute: datetime, replica: str, p99: Callable[[dict[float, float]], float | None]
               ) -> models.MinuteSample:
        return models.MinuteSample(
            minute=minute, replica=replica, cpu_cores=self.cpu_seconds / self.seconds if self.seconds else 0.0,
            rss_bytes=self.rss_bytes, requests=round(self.requests), errors=round(self.errors),
            p99_ms=p99(self.buckets), queue_depth=self.queue_depth,
            batch_rows=self.batch_rows / self.batches if self.batches else None,
            gpu_util=sum(self.gpu_util) / len(self.gpu_util) if self.gpu_util else None,
            gpu_memory_bytes=self.gpu_memory_bytes)


def _went_backwards(before: ReplicaReading, after: ReplicaReading) -> bool:
    """Any counter lower than before: the process restarted (even if it has outgrown the old one
    on some counters already)."""
    counters = ("cpu_seconds", "requests", "errors", "latency_seconds", "batch_rows", "batches")
    if any(getattr(after, name) < getattr(before, name) for name in counters):
        return True
    earlier = dict(before.latency_buckets)
    return any(count < earlier.get(bound, 0.0) for bound, count in after.latency_buckets)


class Sampler:
    """Keeps the last reading per replica and the open minutes; ``take`` is one round."""

    def __init__(self, store: ports.MetadataStore, runtime: ports.Runtime, *, retention: timedelta,
                 p99: Callable[[dict[float, float]], float | None]) -> None:
        self._store = store
        self._runtime = runtime
        self._retention = retention
        self._p99 = p99
        self._last: dict[tuple[Key, str], tuple[datetime, ReplicaReading]] = {}
        self._open: dict[tuple[Key, str, datetime], _Minute] = {}
        self._pruned: datetime | None = None

    def take(self, keys: list[Key], now: datetime) -> dict[Key, list[tuple[float, ReplicaReading, ReplicaReading]]]:
        """Read every replica of ``keys``; return this round's (seconds, before, after) per deployment,
        which the autoscaler turns into load."""
        minute = now.replace(second=0, microsecond=0)
        rounds: dict[Key, list[tuple[float, ReplicaReading, ReplicaReading]]] = {}
        seen: set[tuple[Key, str]] = set()
        for key in keys:
            try:
                readings = self._runtime.readings(key)
            except Exception as exc:  # one deployment's trouble must not stop the others' sampling
                log.warning("sampling %s/%s failed: %s", key[1], key[0], exc)
                seen.update(slot for slot in self._last if slot[0] == key)  # keep the baselines for next time
                continue
            for reading in readings:
                slot = (key, reading.replica)
                seen.add(slot)
                previous = self._last.get(slot)
                self._last[slot] = (now, reading)
                if previous is None or _went_backwards(previous[1], reading):
                    continue
                seconds = (now - previous[0]).total_seconds()
                if seconds <= 0:
                    continue
                self._open.setdefault((key, reading.replica, minute), _Minute()).add(previous[1], reading, seconds)
                rounds.setdefault(key, []).append((seconds, previous[1], reading))
        for slot in set(self._last) - seen:  # replicas that are gone: their samples end here
            del self._last[slot]
        self._flush(before=minute)
        self._prune(now)
        return rounds

    def _flush(self, *, before: datetime) -> None:
        done = [slot for slot in self._open if slot[2] < before]
        by_deployment: dict[Key, list[models.MinuteSample]] = {}
        for key, replica, minute in done:
            try:
                sample = self._open.pop((key, replica, minute)).sample(minute, replica, self._p99)
            except Exception as exc:  # one bad minute must not cost the others theirs
                log.warning("dropping the %s sample of %s/%s replica %s: %s", minute.isoformat(), key[1], key[0],
                            replica, exc)
                continue
            by_deployment.setdefault(key, []).append(sample)
        if by_deployment:
            with self._store.writing() as tx:
                for (name, environment), samples in by_deployment.items():
                    tx.put_utilization(name, environment, samples)

    def _prune(self, now: datetime) -> None:
        if self._pruned is not None and now - self._pruned < PRUNE_EVERY:
            return
        self._pruned = now
        with self._store.writing() as tx:
            removed = tx.prune_utilization(now - self._retention)
        if removed:
            log.info("utilization: pruned %d rows older than %s", removed, self._retention)
