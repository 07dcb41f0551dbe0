"""Sample utilization and autoscale the local runtime's deployments, on a schedule.

One round every ``interval`` seconds: the sampler reads every replica (``sampling``), then
each deployment whose spec allows more than one replica count gets an autoscaling decision
(``autoscale.decide``) from the round's load: the concurrency (request seconds per second,
from the latency histogram's sum) plus the requests queued for a model call, summed over
replicas. A change is applied through the runtime without restarting the other replicas and
recorded in the deployment's history with its reason and evidence.

The local runtime cannot wake a stopped deployment on a request, so ``replicas.min: 0`` runs
at least one replica here (a cluster's autoscaler can do better). On Kubernetes the loop only
samples: the rendered HorizontalPodAutoscaler scales.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timedelta

from threadline import ports
from threadline.capacity import autoscale
from threadline.capacity.sampling import Sampler
from threadline.domain import models
from threadline.gitops import spec as deployment_spec
from threadline.gitops.model import Key, ReplicaReading

log = logging.getLogger("threadline.capacity")

HISTORY = timedelta(minutes=15)


class CapacityLoop:
    def __init__(self, store: ports.MetadataStore, runtime: ports.Runtime, clock: ports.Clock, sampler: Sampler,
                 *, interval: float = 10.0, autoscale: bool = True) -> None:
        self._store = store
        self._runtime = runtime
        self._clock = clock
        self._sampler = sampler
        self._interval = interval
        self._autoscales = autoscale  # off where the platform scales (the rendered HPA on Kubernetes)
        self._observations: dict[Key, deque[autoscale.Observation]] = {}
        self._proposals: dict[Key, deque[autoscale.Proposal]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="capacity", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def round(self) -> None:
        now = self._clock.now()
        with self._store.reading() as tx:
            records = [r for r in tx.deployments() if r.spec]
        specs = {(r.name, r.environment): r.spec for r in records}
        rounds = self._sampler.take(list(specs), now)
        if not self._autoscales:
            return
        observed = self._runtime.observe()
        for key, document in specs.items():
            try:
                replicas = deployment_spec.ModelDeployment.model_validate(dict(document), by_alias=True,
                                                                           by_name=False).spec.replicas
                running = observed.get(key)
                if running is None or replicas.max <= max(replicas.min, 1) or key not in rounds:
                    continue
                self._autoscale(key, replicas, running.replicas, rounds[key], now)
            except Exception:  # one deployment's trouble must not stop the others' autoscaling
                log.exception("autoscaling %s/%s failed", key[1], key[0])

    def _autoscale(self, key: Key, replicas: deployment_spec.Replicas, current: int,
                   readings: list[tuple[float, ReplicaReading, ReplicaReading]], now: datetime) -> None:
        load = sum((after.latency_seconds - before.latency_seconds) / seconds + after.queue_depth
                   for seconds, before, after in readings)
        requests = round(sum(after.requests - before.requests for _s, before, after in readings))
        observations = self._observations.setdefault(key, deque())
        observations.append(autoscale.Observation(now, max(load, 0.0), requests))
        proposals = self._proposals.setdefault(key, deque())
        for queue in (observations, proposals):
            while queue and now - queue[0].time > HISTORY:
                queue.popleft()
        minimum = max(replicas.min, 1)
        decision = autoscale.decide(
            current, minimum, replicas.max, list(observations), replicas.target_concurrency, now,
            stabilization=timedelta(seconds=replicas.scale_down_stabilization),
            idle_after=timedelta(seconds=replicas.idle_after) if replicas.idle_after else timedelta.max,
            history=list(proposals))
        proposals.append(autoscale.Proposal(now, decision.wanted))
        if decision.desired == current:
            return
        name, environment = key
        try:
            self._runtime.scale(key, decision.desired)
            outcome = "applied"
        except Exception as exc:
            log.warning("autoscaling %s/%s to %d failed: %s", environment, name, decision.desired, exc)
            outcome = "failed"
        else:
            log.info("autoscaled %s/%s from %d to %d: %s", environment, name, current, decision.desired,
                     decision.reason)
        with self._store.writing() as tx:
            tx.add_history(models.HistoryRecord(
                name=name, environment=environment, commit="", action="autoscale", outcome=outcome,
                workload=None, reason=decision.reason,
                evidence={"from": current, "to": decision.desired, "load": round(load, 3),
                          "target_per_replica": replicas.target_concurrency, "requests": requests},
                time=now))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.round()
            except Exception:  # the next round tries again; sampling must never take the control plane down
                log.exception("capacity round failed")
