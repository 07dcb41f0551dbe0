"""Prometheus metrics of the data plane, in a registry of its own (no process globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("threadline_inference_requests", "Inference requests by outcome.",
                                ["model", "version", "status"], registry=r)
        self.latency = Histogram("threadline_inference_latency_seconds", "Time to answer an inference request.",
                                 ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("threadline_batch_rows", "Rows per model call after micro-batching.",
                                    ["model", "version"], buckets=BATCH_BUCKETS, registry=r)
        self.batch_requests = Histogram("threadline_batch_requests", "Requests merged into one model call.",
                                        ["model", "version"], buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("threadline_queue_depth", "Requests waiting for a model call.",
                                 ["model", "version"], registry=r)
        self.load_seconds = Gauge("threadline_model_load_seconds", "Time to fetch, verify and load a version.",
                                  ["model", "version"], registry=r)
        self.logged = Counter("threadline_predictions_logged", "Prediction records written to the log.",
                              registry=r)
        self.dropped = Counter("threadline_predictions_dropped",
                               "Prediction records dropped because the log could not keep up.", registry=r)
        self.escalated = Counter("threadline_predictions_escalated", "Predictions marked for human review.",
                                 ["model", "version"], registry=r)
        self.bundles_refused = Counter("threadline_bundles_refused", "Escalations answered as not escalated "
                                       "because their bundle could not be kept (spool full, disk error).",
                                       registry=r)
        self.bundles_shipped = Counter("threadline_bundles_shipped", "Context bundles the control plane "
                                       "acknowledged.", registry=r)
        self.rate_limited = Counter("threadline_rate_limited", "Requests refused with 429.", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
