"""Prometheus metrics of the data plane, in a registry of its own (no process globals)."""

from __future__ import annotations

import bisect
import itertools
from typing import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class _Histogram:
    """Counts per bucket (the last: above every bound) and their sum, as plain numbers."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # Prometheus' "le": bound included
        self.sum += value

    def buckets(self) -> list[tuple[str, int]]:
        """Cumulative counts by ``le``, as Prometheus exposes them."""
        return list(zip([*map(floatToGoString, self.bounds), "+Inf"], itertools.accumulate(self.counts)))


class VersionMetrics:
    """The series of one served version that change with every prediction, as plain numbers
    that the registry reads when scraped.

    prometheus_client's ``inc`` and ``observe`` take a lock and several calls each, and every
    prediction paid for five of them. Each number has one writer: the event loop for requests,
    latency and escalations (the scrape runs there too), the model thread for batch sizes,
    whose sum may lag its counts by one batch while a scrape reads them.
    """

    def __init__(self, model: str, version: str) -> None:
        self.labels = [model, version]
        self.ok = self.error = self.escalated = 0
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batch_rows = _Histogram(BATCH_BUCKETS)
        self.batch_requests = _Histogram(BATCH_BUCKETS)

    def answered(self, seconds: float, escalated: int) -> None:
        self.ok += 1
        self.escalated += escalated
        self.latency.observe(seconds)

    def failed(self) -> None:
        self.error += 1

    def batched(self, rows: int, requests: int) -> None:
        """A model call of ``rows`` rows for ``requests`` requests (the batcher's observer)."""
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)


class _PerVersion:
    """Exposes every ``VersionMetrics`` under the names, labels and buckets that the platform reads."""

    def __init__(self) -> None:
        self.versions: list[VersionMetrics] = []

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("threadline_inference_requests", "Inference requests by outcome.",
                                       labels=["model", "version", "status"])
        escalated = CounterMetricFamily("threadline_predictions_escalated", "Predictions marked for human review.",
                                        labels=["model", "version"])
        labels = ["model", "version"]
        histograms = {
            "latency": HistogramMetricFamily("threadline_inference_latency_seconds",
                                             "Time to answer an inference request.", labels=labels),
            "batch_rows": HistogramMetricFamily("threadline_batch_rows", "Rows per model call after micro-batching.",
                                                labels=labels),
            "batch_requests": HistogramMetricFamily("threadline_batch_requests",
                                                    "Requests merged into one model call.", labels=labels),
        }
        for version in self.versions:
            requests.add_metric([*version.labels, "ok"], version.ok)
            requests.add_metric([*version.labels, "error"], version.error)
            escalated.add_metric(version.labels, version.escalated)
            for attribute, family in histograms.items():
                histogram: _Histogram = getattr(version, attribute)
                family.add_metric(version.labels, histogram.buckets(), histogram.sum)
        yield from (requests, escalated, *histograms.values())


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._per_version = _PerVersion()
        r.register(self._per_version)
        self.queue_depth = Gauge("threadline_queue_depth", "Requests waiting for a model call.",
                                 ["model", "version"], registry=r)
        self.load_seconds = Gauge("threadline_model_load_seconds", "Time to fetch, verify and load a version.",
                                  ["model", "version"], registry=r)
        self.logged = Counter("threadline_predictions_logged", "Prediction records written to the log.",
                              registry=r)
        self.dropped = Counter("threadline_predictions_dropped",
                               "Prediction records dropped because the log could not keep up.", registry=r)
        self.bundles_refused = Counter("threadline_bundles_refused", "Escalations answered as not escalated "
                                       "because their bundle could not be kept (spool full, disk error).",
                                       registry=r)
        self.bundles_shipped = Counter("threadline_bundles_shipped", "Context bundles the control plane "
                                       "acknowledged.", registry=r)
        self.rate_limited = Counter("threadline_rate_limited", "Requests refused with 429.", registry=r)

    def version(self, model: str, version: str) -> VersionMetrics:
        """The per-prediction series of one served version (call once per version)."""
        found = VersionMetrics(model, version)
        self._per_version.versions.append(found)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)
