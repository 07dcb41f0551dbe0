"""Serving counters read back from replicas' Prometheus ``/metrics`` (both runtimes use it).

Requests, errors (every status but ``ok``) and the latency histogram are summed over replicas
per revision ref (``MODEL@VERSION``); p99 is the upper bound of the bucket that holds the 99th
percentile of the summed histogram (``inf`` when it is past the last bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client import parser as prometheus_parser

from threadline.gitops import model


@dataclass
class _Totals:
    requests: float = 0.0
    errors: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)


class ServingTotals:
    def __init__(self) -> None:
        self._by_ref: dict[str, _Totals] = {}

    def add(self, text: str) -> None:
        """Add one replica's exposition text."""
        for family in prometheus_parser.text_string_to_metric_families(text):
            for sample in family.samples:
                labels = sample.labels
                if "model" not in labels or "version" not in labels:
                    continue
                entry = self._by_ref.setdefault(f"{labels['model']}@{labels['version']}", _Totals())
                if sample.name == "threadline_inference_requests_total":
                    entry.requests += sample.value
                    if labels.get("status") != "ok":
                        entry.errors += sample.value
                elif sample.name == "threadline_inference_latency_seconds_bucket":
                    bound = float(labels["le"])
                    entry.buckets[bound] = entry.buckets.get(bound, 0.0) + sample.value

    def sample(self) -> model.ServingSample:
        return model.ServingSample(by_revision={
            ref: model.RevisionSample(requests=int(t.requests), errors=int(t.errors), p99_ms=_p99_ms(t.buckets))
            for ref, t in self._by_ref.items()})


def _p99_ms(buckets: dict[float, float]) -> float | None:
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    for bound in sorted(buckets):
        if buckets[bound] >= 0.99 * total:
            return bound * 1000.0
    return math.inf


@dataclass
class ReplicaCounters:
    """One replica's counters summed over its model versions (for utilization and autoscaling)."""

    requests: float = 0.0
    errors: float = 0.0
    latency_seconds: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)
    queue_depth: float = 0.0
    batch_rows: float = 0.0
    batches: float = 0.0


def replica_counters(text: str) -> ReplicaCounters:
    counters = ReplicaCounters()
    for family in prometheus_parser.text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if name == "threadline_inference_requests_total":
                counters.requests += sample.value
                if labels.get("status") != "ok":
                    counters.errors += sample.value
            elif name == "threadline_inference_latency_seconds_sum":
                counters.latency_seconds += sample.value
            elif name == "threadline_inference_latency_seconds_bucket":
                bound = float(labels["le"])
                counters.buckets[bound] = counters.buckets.get(bound, 0.0) + sample.value
            elif name == "threadline_queue_depth":
                counters.queue_depth += sample.value
            elif name == "threadline_batch_rows_sum":
                counters.batch_rows += sample.value
            elif name == "threadline_batch_rows_count":
                counters.batches += sample.value
    return counters


def p99_ms(buckets: dict[float, float]) -> float | None:
    """The p99 of a (cumulative) latency histogram, as the upper bound of its bucket, in ms."""
    return _p99_ms(buckets)
