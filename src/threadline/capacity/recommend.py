"""Right-sizing: what a deployment should request, from what it was measured to use.

Teams over-provision because nobody measures what a model needs, so this module turns a
window of per-minute samples into requests a reviewer can accept as a Git change, each with
its evidence, its expected saving and its risk. It refuses to guess: fewer than
``minimum_minutes`` distinct minutes of samples is an error, not a weak recommendation.

The method follows the Kubernetes Vertical Pod Autoscaler's recommender (a high percentile of
usage plus a safety margin), adapted to what a model server is judged by, its latency SLO:

- CPU request: the 90th percentile of the per-replica, per-minute average CPU use, plus a 15%
  margin, rounded up to 50m (never under 50m). CPU is compressible: a replica that bursts past
  its request is slowed, not killed, so a high percentile is enough (as in the VPA).
- Memory request: the peak RSS of any replica in any minute, plus 15%, rounded up to 64 MiB.
  Memory is not compressible (past its limit a process is killed), so the peak, not a percentile.
- Replica bounds: one replica's capacity is the most requests/s a replica served in a minute
  whose p99 stayed within the SLO (without an SLO: the most it served). ``max`` =
  ceil(peak total requests/s / capacity x 1.2), ``min`` = ceil(10th percentile of total
  requests/s / capacity); both at least 1, min never above max. A ``min`` of 0 asked for in the
  spec (scale to zero) is a choice this module keeps.
- GPU: peak GPU memory plus 20% against the price table: the cheapest whole GPU or MIG slice it
  fits (usually the smallest), when cheaper than what is requested; time-slicing a shared GPU
  when peak utilization stays under 30%. Without GPU samples it says "no GPU data" and changes
  nothing: a missing measurement is never a zero.

The saving compares requested cost x the average replicas observed with recommended cost x
the replicas the new bounds would run on the same traffic, over a 730-hour month, at
on-demand prices. It includes the GPU advice, which a person must act on (new hardware is
not written to Git for them); ``evidence["gpu_saving_per_month"]`` says how much of it that is. Capacity is
what a replica was seen to serve, so an over-provisioned deployment's is a lower bound: the
bounds stay safe, and shrink further once a later window shows busier replicas.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from threadline.capacity import prices as pricing  # ``prices`` is recommend's keyword
from threadline.domain import errors
from threadline.domain.models import MinuteSample

CPU_PERCENTILE = 0.90
MARGIN = 0.15
"""The VPA's default safety margin on top of the measured percentile."""
CPU_STEP_MILLI = 50
MEMORY_STEP = 64 * 1024 ** 2
REPLICA_HEADROOM = 1.2
"""Room above the measured peak for traffic that has not been seen yet."""
MIN_TRAFFIC_PERCENTILE = 0.10
GPU_MEMORY_HEADROOM = 1.2
TIME_SLICING_BELOW = 0.3
"""Peak GPU utilization under which a model leaves most of a GPU idle and can share one."""
LITTLE_HEADROOM = 0.8
"""A p99 at the peak above this share of the SLO leaves little room for more traffic."""

_MI, _GI = 1024 ** 2, 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Requested:
    """What one replica of a deployment asks for now, and its replica bounds."""

    cpu_cores: float
    memory_bytes: int
    gpu: int
    gpu_type: str | None
    replicas_min: int
    replicas_max: int


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """New requests and bounds, with why (``evidence``), what they save and what they risk.

    ``gpu`` is advice for a person (new hardware and sharing are not written to Git), or None
    when the deployment uses no GPU. ``saving_per_month`` is positive when the recommendation
    is cheaper, in the price table's currency.
    """

    requested: Requested
    cpu_cores: float
    memory_bytes: int
    replicas_min: int
    replicas_max: int
    gpu: str | None
    evidence: Mapping[str, object]
    saving_per_month: float
    risk: str

    def changes(self) -> dict[str, tuple[float | int, float | int]]:
        """``{field: (requested, recommended)}`` for the fields that differ, in spec order."""
        pairs = {
            "cpu_cores": (self.requested.cpu_cores, self.cpu_cores),
            "memory_bytes": (self.requested.memory_bytes, self.memory_bytes),
            "replicas_min": (self.requested.replicas_min, self.replicas_min),
            "replicas_max": (self.requested.replicas_max, self.replicas_max),
        }
        return {name: (before, after) for name, (before, after) in pairs.items()
                if round(before * 1000) != round(after * 1000)}  # CPU compares in millicores


@dataclasses.dataclass(frozen=True)
class _Traffic:
    """Requests/s and replicas per minute, one replica's capacity within the SLO, the breaches."""

    total_rps: dict[datetime, float]
    replicas: dict[datetime, int]
    peak_minute: datetime
    capacity: float | None
    breach_minutes: int
    p99_at_peak: float | None


def recommend(samples: Sequence[MinuteSample], requested: Requested, *, slo_p99_ms: float | None,
              prices: pricing.PriceTable, minimum_minutes: int = 60,
              now_window: tuple[datetime, datetime]) -> Recommendation:
    """A recommendation from the samples inside ``now_window`` (start inclusive, end exclusive).

    Raises InvalidInput "not enough data: N minutes of M needed" with fewer distinct minutes.
    """
    start, end = now_window
    if start.tzinfo is None or end.tzinfo is None:
        raise errors.InvalidInput("the window needs time-zone-aware (UTC) times", field="now_window")
    if not start < end:
        raise errors.InvalidInput(f"the window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    inside = [s for s in samples if start <= s.minute < end]
    minutes, needed = len({s.minute for s in inside}), max(minimum_minutes, 1)
    if minutes < needed:
        raise errors.InvalidInput(f"not enough data: {minutes} minutes of {needed} needed")

    cpu = sorted(s.cpu_cores for s in inside)
    rss = sorted(s.rss_bytes for s in inside)
    traffic = _traffic(inside, slo_p99_ms)
    low, high = _bounds(traffic, requested)
    gpu_advice, gpu_hourly = _gpu(inside, requested, prices)
    cpu_cores, memory = _cpu_request(cpu), _memory_request(rss)

    current_replicas = sum(traffic.replicas.values()) / len(traffic.replicas)
    future_replicas = _expected_replicas(traffic, low, high, current_replicas)
    resized = dataclasses.replace(requested, cpu_cores=cpu_cores, memory_bytes=memory, gpu=0)
    before = pricing.hourly(prices, requested) * current_replicas
    after = (pricing.hourly(prices, resized) + gpu_hourly) * future_replicas
    gpu_saving = (requested.gpu * pricing.gpu_rate(prices, requested.gpu_type) - gpu_hourly
                  if requested.gpu > 0 else 0.0) * future_replicas * pricing.HOURS_PER_MONTH
    evidence: dict[str, object] = {
        "window_start": start.isoformat(), "window_end": end.isoformat(), "minutes": minutes,
        "replicas_seen": len({s.replica for s in inside}), "average_replicas": round(current_replicas, 3),
        "expected_replicas": round(future_replicas, 3), **_usage(cpu, rss), **_traffic_evidence(traffic, slo_p99_ms),
        "gpu_saving_per_month": round(gpu_saving, 2),  # advice only: a person changes the hardware
        "method": (f"cpu: p{CPU_PERCENTILE * 100:g} + {MARGIN:.0%}, step {CPU_STEP_MILLI}m; memory: peak + "
                   f"{MARGIN:.0%}, step 64Mi; replicas: peak and p{MIN_TRAFFIC_PERCENTILE * 100:g} requests/s "
                   f"over per-replica capacity within the SLO, max x {REPLICA_HEADROOM:g}"),
    }
    return Recommendation(
        requested=requested, cpu_cores=cpu_cores, memory_bytes=memory, replicas_min=low, replicas_max=high,
        gpu=gpu_advice, evidence=evidence, saving_per_month=round((before - after) * pricing.HOURS_PER_MONTH, 2),
        risk=_risk(traffic, slo_p99_ms))


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, interpolated linearly (numpy's default)."""
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def cpu_text(cores: float) -> str:
    """A Kubernetes CPU quantity: ``"2"`` for whole cores, ``"250m"`` otherwise."""
    milli = round(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def memory_text(size: int) -> str:
    """A Kubernetes memory quantity in the largest binary unit that holds it exactly."""
    for unit, factor in (("Ti", 1024 ** 4), ("Gi", _GI), ("Mi", _MI), ("Ki", 1024)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def _cpu_request(ordered: Sequence[float]) -> float:
    """p90 + 15% in cores, rounded up to 50m (the 1e-6 keeps 0.3 x 1000 from becoming 301m)."""
    milli = math.ceil(percentile(ordered, CPU_PERCENTILE) * (1 + MARGIN) * 1000 - 1e-6)
    return max(CPU_STEP_MILLI, _round_up(milli, CPU_STEP_MILLI)) / 1000


def _memory_request(ordered: Sequence[int]) -> int:
    return max(MEMORY_STEP, _round_up(math.ceil(ordered[-1] * (1 + MARGIN)), MEMORY_STEP))


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _usage(cpu: Sequence[float], rss: Sequence[int]) -> dict[str, object]:
    return {"cpu_p50": round(percentile(cpu, 0.5), 4), "cpu_p90": round(percentile(cpu, 0.9), 4),
            "cpu_p99": round(percentile(cpu, 0.99), 4), "cpu_max": cpu[-1],
            "rss_p50": round(percentile(rss, 0.5)), "rss_p99": round(percentile(rss, 0.99)), "rss_max": rss[-1]}


def _traffic_evidence(traffic: _Traffic, slo: float | None) -> dict[str, object]:
    capacity = traffic.capacity
    return {"peak_rps": round(traffic.total_rps[traffic.peak_minute], 3),
            "peak_minute": traffic.peak_minute.isoformat(),
            "capacity_rps_per_replica": None if capacity is None else round(capacity, 3),
            "p99_at_peak_ms": traffic.p99_at_peak, "slo_p99_ms": slo,
            "slo_breach_minutes": traffic.breach_minutes}


def _traffic(samples: Sequence[MinuteSample], slo: float | None) -> _Traffic:
    total: dict[datetime, float] = defaultdict(float)
    replicas: dict[datetime, set[str]] = defaultdict(set)
    worst: dict[datetime, float] = {}
    capacity: float | None = None
    for s in samples:
        total[s.minute] += s.requests / 60
        replicas[s.minute].add(s.replica)
        if s.p99_ms is not None:
            worst[s.minute] = max(worst.get(s.minute, 0.0), s.p99_ms)
        within = s.requests > 0 and (slo is None or (s.p99_ms is not None and s.p99_ms <= slo))
        if within:
            capacity = max(capacity or 0.0, s.requests / 60)
    peak = max(sorted(total), key=lambda minute: total[minute])  # the first minute of the peak
    breaches = sum(1 for p99 in worst.values() if slo is not None and p99 > slo)
    return _Traffic(dict(total), {m: len(r) for m, r in replicas.items()}, peak, capacity, breaches,
                    worst.get(peak))


def _bounds(traffic: _Traffic, requested: Requested) -> tuple[int, int]:
    """Replica bounds from traffic; the requested ones when no minute shows a capacity."""
    if traffic.capacity is None:  # no traffic, or every minute over the SLO: nothing to size from
        return requested.replicas_min, requested.replicas_max
    rates = sorted(traffic.total_rps.values())
    high = max(1, math.ceil(rates[-1] / traffic.capacity * REPLICA_HEADROOM - 1e-9))
    low = max(1, math.ceil(percentile(rates, MIN_TRAFFIC_PERCENTILE) / traffic.capacity - 1e-9))
    return (0 if requested.replicas_min == 0 else min(low, high)), high


def _expected_replicas(traffic: _Traffic, low: int, high: int, current: float) -> float:
    """The average replicas an autoscaler would run with the new bounds on the same traffic."""
    if traffic.capacity is None:
        return min(max(current, low), high)
    wanted = [min(max(math.ceil(rps / traffic.capacity - 1e-9), low), high)
              for rps in traffic.total_rps.values()]
    return sum(wanted) / len(wanted)


def _gpu(samples: Sequence[MinuteSample], requested: Requested, table: pricing.PriceTable
         ) -> tuple[str | None, float]:
    """GPU advice, and the per-replica GPU cost per hour the advice implies."""
    if requested.gpu <= 0:
        return None, 0.0
    current = requested.gpu * pricing.gpu_rate(table, requested.gpu_type)
    memory = [s.gpu_memory_bytes for s in samples if s.gpu_memory_bytes is not None]
    utilization = [s.gpu_util for s in samples if s.gpu_util is not None]
    if not memory and not utilization:
        return ("no GPU data: GPU memory and utilization were not measured (no NVML); "
                "GPU left as requested"), current
    notes: list[str] = []
    cost = current
    if memory:
        need = max(memory) * GPU_MEMORY_HEADROOM / _GI
        name, price = _cheapest_fit(table, need)
        if name is not None and price < current - 1e-9:
            cost = price
            notes.append(f"fits {name} (needs {need:.1f} GiB: peak GPU memory {max(memory) / _GI:.1f} GiB + 20%) "
                         f"at {price:.2f} {table.currency}/h instead of {current:.2f}; "
                         "check throughput: a smaller GPU or a slice also computes less")
        else:
            notes.append(f"needs {need:.1f} GiB of GPU memory (peak + 20%): no cheaper GPU or MIG slice fits")
    else:
        notes.append("no GPU memory data: GPU type left as requested")
    if utilization and max(utilization) < TIME_SLICING_BELOW:
        notes.append(f"peak GPU utilization {max(utilization):.0%} is under {TIME_SLICING_BELOW:.0%}: "
                     "it can share a GPU with other models by time-slicing")
    return "; ".join(notes), cost


def _cheapest_fit(table: pricing.PriceTable, need_gib: float) -> tuple[str | None, float]:
    """The cheapest whole GPU or MIG slice with ``need_gib`` of memory (smaller first on a tie)."""
    options: list[tuple[float, float, str]] = []
    for gpu, memory in table.gpu_memory_gib.items():
        rate = table.gpu_hour[gpu].on_demand
        if memory >= need_gib:
            options.append((rate, memory, gpu))
        options += [(rate * profile.fraction, profile.memory_gib, f"MIG {name} of {gpu}")
                    for name, profile in table.mig_profiles.get(gpu, {}).items()
                    if profile.memory_gib >= need_gib and profile.fraction < 1]
    if not options:
        return None, math.inf
    rate, _, name = min(options)
    return name, rate


def _risk(traffic: _Traffic, slo: float | None) -> str:
    if slo is None:
        return "medium: no latency SLO given, so the replica bounds rest on the observed peak alone"
    if traffic.breach_minutes:
        return (f"high: SLO breached in {traffic.breach_minutes} minutes "
                f"(p99 over {slo:g} ms); fix latency before cutting resources")
    at_peak = traffic.p99_at_peak
    if at_peak is None:
        return "medium: no latency was measured at the peak"
    if at_peak > LITTLE_HEADROOM * slo:
        return f"medium: little headroom: p99 at the measured peak was {at_peak:g} ms of the {slo:g} ms SLO"
    return f"low: p99 stayed within the SLO at the measured peak ({at_peak:g} ms of {slo:g} ms)"
