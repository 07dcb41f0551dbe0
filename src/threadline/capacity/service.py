"""Right-sizing recommendations and cost reports from measured utilization (use case).

What a deployment requests comes from its spec as the GitOps agent last applied it; what it
uses comes from the sampler's per-minute rows; prices come from the price table
(``THREADLINE_PRICE_TABLE`` or the built-in defaults). The arithmetic is in ``recommend`` and
``cost``; this module only gathers the inputs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import pydantic

from threadline import ports
from threadline.capacity import cost, prices, recommend
from threadline.domain import access, errors, models
from threadline.gitops import spec as deployment_spec
from threadline.gitops import values

GIB = 1024 ** 3


class Capacity:
    def __init__(self, store: ports.MetadataStore, clock: ports.Clock, price_table: Path | None,
                 *, minimum_minutes: int = 60) -> None:
        self._store = store
        self._clock = clock
        self._price_table = price_table
        self._minimum_minutes = minimum_minutes

    def prices(self) -> prices.PriceTable:
        if self._price_table is None:
            return prices.default()
        try:
            text = self._price_table.read_text(encoding="utf-8")
        except OSError as exc:
            raise errors.ConfigurationError(f"cannot read the price table {self._price_table}: {exc}") from exc
        return prices.parse(text, str(self._price_table))

    def recommendation(self, actor: access.Actor, deployment: str, environment: str,
                       window: timedelta) -> recommend.Recommendation:
        actor.require(access.Permission.READ)
        record = self._record(deployment, environment)
        now = self._clock.now()
        with self._store.reading() as tx:
            samples = tx.utilization(deployment, environment, now - window, now)
        return self._recommend(record, samples, (now - window, now), self.prices())

    def samples(self, actor: access.Actor, deployment: str, environment: str,
                window: timedelta) -> list[models.MinuteSample]:
        actor.require(access.Permission.READ)
        now = self._clock.now()
        with self._store.reading() as tx:
            return tx.utilization(deployment, environment, now - window, now)

    def usage(self, record: models.DeploymentRecord,
              window: timedelta = timedelta(hours=1)) -> dict[str, object] | None:
        """Measured use against the spec's requests over the last ``window`` (None: nothing measured)."""
        now = self._clock.now()
        with self._store.reading() as tx:
            samples = tx.utilization(record.name, record.environment, now - window, now)
        if not samples or not record.spec:
            return None
        try:
            asked = requested(_spec(record))
        except pydantic.ValidationError:  # a spec stored by an older version: no comparison, not an error page
            return None
        cpu = sum(s.cpu_cores for s in samples) / len(samples)
        memory = sum(s.rss_bytes for s in samples) / len(samples)
        gpus = [s.gpu_util for s in samples if s.gpu_util is not None]
        return {"window_minutes": len({s.minute for s in samples}), "replicas": len({s.replica for s in samples}),
                "cpu_cores_used": round(cpu, 4), "cpu_cores_requested": asked.cpu_cores,
                "cpu_utilization": round(cpu / asked.cpu_cores, 4),
                "memory_bytes_used": round(memory), "memory_bytes_requested": asked.memory_bytes,
                "memory_utilization": round(memory / asked.memory_bytes, 4),
                "gpu_utilization": round(sum(gpus) / len(gpus), 4) if gpus else None}

    def cost(self, actor: access.Actor, *, by: Literal["deployment", "model", "team"], since: timedelta,
             spot: bool = False) -> list[cost.CostRow]:
        actor.require(access.Permission.READ)
        table = self.prices()
        now = self._clock.now()
        with self._store.reading() as tx:
            records = [r for r in tx.deployments() if r.spec]
            measured = [(record, tx.utilization(record.name, record.environment, now - since, now))
                        for record in records]
        usage = []
        for record, samples in measured:
            if not samples:
                continue
            spec = _spec(record)
            try:
                saving: float | None = self._recommend(record, samples, (now - since, now), table).saving_per_month
            except errors.InvalidInput:  # too little data for a recommendation: no saving claimed
                saving = None
            usage.append(cost.UsageRecord(
                deployment=record.name, environment=record.environment, model=spec.spec.model,
                team=spec.metadata.owner, replica_hours=len(samples) / 60, requested=requested(spec),
                cpu_core_hours_used=sum(s.cpu_cores for s in samples) / 60,
                memory_gib_hours_used=sum(s.rss_bytes for s in samples) / GIB / 60,
                predictions=sum(s.requests for s in samples), saving_per_month=saving))
        return cost.report(usage, table, by=by, spot=spot)

    def _recommend(self, record: models.DeploymentRecord, samples: list[models.MinuteSample],
                   window: tuple[datetime, datetime], table: prices.PriceTable) -> recommend.Recommendation:
        spec = _spec(record)
        return recommend.recommend(samples, requested(spec), slo_p99_ms=slo_p99_ms(spec.spec), prices=table,
                                   minimum_minutes=self._minimum_minutes, now_window=window)

    def _record(self, deployment: str, environment: str) -> models.DeploymentRecord:
        with self._store.reading() as tx:
            record = tx.get_deployment(deployment, environment)
        if not record.spec:
            raise errors.NotFound(f"deployment {deployment} ({environment}) is no longer declared in Git")
        return record


def _spec(record: models.DeploymentRecord) -> deployment_spec.ModelDeployment:
    return deployment_spec.ModelDeployment.model_validate(dict(record.spec), by_alias=True, by_name=False)


def requested(document: deployment_spec.ModelDeployment) -> recommend.Requested:
    spec = document.spec
    return recommend.Requested(
        cpu_cores=values.cpu_cores(spec.resources.cpu), memory_bytes=values.memory_bytes(spec.resources.memory),
        gpu=spec.resources.gpu, gpu_type=spec.resources.gpu_type, replicas_min=spec.replicas.min,
        replicas_max=spec.replicas.max)


def slo_p99_ms(spec: deployment_spec.DeploymentSpec) -> float | None:
    """The latency the deployment promises: its monitoring SLO, else its rollback threshold."""
    if spec.monitoring.latency is not None and spec.monitoring.latency.p99_ms is not None:
        return spec.monitoring.latency.p99_ms
    return spec.health.max_p99_latency_ms
