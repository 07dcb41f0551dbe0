"""Pod CPU and memory from the Kubernetes metrics API, as the cumulative readings the sampler wants.

metrics-server reports each container's *current* usage (a rate averaged over its last scrape
window, e.g. ``"123456789n"`` cores and ``"81920Ki"`` bytes), while the sampler (like /proc)
works with cumulative CPU seconds. ``PodUsage`` integrates the rate between readings, so both
runtimes feed the same rollups: a minute's average cores is then the average of the reported
rates over the minute.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from threadline.gitops import values

_CPU = re.compile(r"^(\d+(?:\.\d+)?)(n|u|m)?$")
_CPU_SCALE = {"n": 1e-9, "u": 1e-6, "m": 1e-3, None: 1.0}


def cores(quantity: str) -> float:
    """A metrics-API CPU quantity (``"250m"``, ``"123456n"``, ``"2"``) in cores."""
    match = _CPU.match(quantity)
    if match is None:
        raise ValueError(f"not a CPU quantity: {quantity!r}")
    return float(match[1]) * _CPU_SCALE[match[2]]


def pod_usage(pod_metrics: Mapping[str, Any]) -> tuple[float, int]:
    """(cores, bytes) of one PodMetrics object, summed over its containers."""
    total_cores, total_bytes = 0.0, 0
    for container in pod_metrics.get("containers") or []:
        usage = container.get("usage") or {}
        total_cores += cores(str(usage.get("cpu", "0")))
        total_bytes += values.memory_bytes(str(usage.get("memory", "0")))
    return total_cores, total_bytes


class PodUsage:
    """CPU seconds per pod, integrated from the reported rates between calls of ``update``."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, float]] = {}  # pod -> (time, cumulative cpu seconds)

    def update(self, pod: str, now: float, rate: float) -> float:
        """The pod's cumulative CPU seconds at ``now``, given its current rate in cores."""
        last = self._seen.get(pod)
        total = 0.0 if last is None else last[1] + rate * max(now - last[0], 0.0)
        self._seen[pod] = (now, total)
        return total

    def forget_others(self, pods: set[str]) -> None:
        """Drop pods that are gone, so the table does not grow with every rollout."""
        for pod in set(self._seen) - pods:
            del self._seen[pod]
