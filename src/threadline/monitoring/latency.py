"""Service levels of one window: latency percentiles and error rate, judged against the spec.

This module owns the arithmetic and nothing else: the caller reads the window's request
durations and outcomes from the prediction log and hands them over as arrays; it gets back a
frozen ``ServiceLevels`` and, against ``spec.monitoring.latency``, one ``alerts.Verdict`` per
bound.

Percentiles are those of ``np.percentile`` with its default ``linear`` method (type 7 of Hyndman
and Fan, pandas' default too), so anyone recomputing them from the log gets the same numbers.
They cover successful requests only: a request that failed fast would otherwise make latency
look better exactly when the service is worse; failures are counted in the error rate instead.
Durations that are not finite (a request that was never timed) are left out of the percentiles.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from threadline.domain import errors
from threadline.monitoring import drift
from threadline.monitoring.alerts import Verdict

PERCENTILES = (50.0, 95.0, 99.0)


@dataclasses.dataclass(frozen=True)
class ServiceLevels:
    """Requests in the window, how many failed, and the latency of the successful ones.

    Values are None when there is nothing to compute them from: ``error_rate`` for an empty
    window, the percentiles when no request succeeded with a measured duration.
    """

    count: int
    errors: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None


def service_levels(latency_ms: np.ndarray, ok: np.ndarray) -> ServiceLevels:
    """The service levels of a window from each request's duration (ms) and success flag.

    Raises ``InvalidInput`` for arrays of different lengths, durations that are not numbers or
    are negative, or success flags that are not booleans (or 0 and 1).
    """
    durations = _durations(latency_ms)
    succeeded = _flags(ok)
    if durations.size != succeeded.size:
        raise errors.InvalidInput(f"{succeeded.size} outcomes for {durations.size} durations",
                                  field="ok")
    count = int(durations.size)
    if count == 0:
        return ServiceLevels(0, 0, None, None, None, None)
    failed = count - int(np.count_nonzero(succeeded))
    timed = durations[succeeded & np.isfinite(durations)]
    if timed.size == 0:
        return ServiceLevels(count, failed, failed / count, None, None, None)
    p50, p95, p99 = (float(p) for p in np.percentile(timed, PERCENTILES))
    return ServiceLevels(count, failed, failed / count, p50, p95, p99)


def check(levels: ServiceLevels, p99_ms: float | None,
          max_error_rate: float | None) -> list[Verdict]:
    """One verdict per bound given: rule ``p99_ms`` and rule ``error_rate``.

    A value equal to its bound holds. An empty window gives verdicts without data (``breached``
    None), as does a p99 bound when no request succeeded: the error rate tells that story.
    """
    verdicts = []
    if p99_ms is not None:
        said = None if levels.p99 is None else f"p99 latency {levels.p99:.4g} ms"
        verdicts.append(_judge("p99_ms", levels.p99, float(p99_ms), levels.count, said,
                               "no successful requests"))
    if max_error_rate is not None:
        rate = levels.error_rate
        said = (None if rate is None else
                f"error rate {rate:.4g} ({levels.errors} of {levels.count} requests)")
        verdicts.append(_judge("error_rate", rate, float(max_error_rate), levels.count, said,
                               "no requests"))
    return verdicts


def _judge(rule: str, value: float | None, bound: float, count: int, said: str | None,
           missing: str) -> Verdict:
    if count == 0:
        return Verdict(rule, None, bound, None, "no requests")
    if value is None or said is None:
        return Verdict(rule, None, bound, None, missing)
    if value > bound:
        return Verdict(rule, value, bound, True, f"{said} is above the maximum {bound:g}")
    return Verdict(rule, value, bound, False, f"{said} is within the maximum {bound:g}")


def _durations(values: np.ndarray) -> np.ndarray:
    array = drift.numbers(values, field="latency_ms")
    if (array < 0).any():
        raise errors.InvalidInput("durations must not be negative", field="latency_ms")
    return array


def _flags(values: np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise errors.InvalidInput(f"must be one-dimensional, got shape {array.shape}",
                                  field="ok")
    if array.dtype == np.bool_:
        return array
    if array.size == 0:
        return np.zeros(0, dtype=bool)
    if array.dtype.kind in "iuf" and np.isin(array, (0, 1)).all():
        return array.astype(bool)
    raise errors.InvalidInput("must be booleans (or 0 and 1)", field="ok")
