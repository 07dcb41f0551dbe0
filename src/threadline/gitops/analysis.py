"""Judging serving metrics (pure): health checks after an apply and canary analysis.

Both compare an error rate and a p99 latency over a window against thresholds. The window is
the difference of two cumulative samples. No traffic is "inconclusive": for a canary that
pauses (never promotes), for a health check it is no evidence of failure. Every verdict keeps
the values it was based on, so the decision can be shown and audited.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from threadline.gitops.model import RevisionSample, ServingSample


class Outcome(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    reason: str
    values: dict[str, Any]


def window(before: ServingSample, after: ServingSample, ref: str) -> RevisionSample:
    """What ``ref`` served between two samples. A counter that went down means the replicas
    restarted; then ``after`` alone is the window. p99 is the later sample's."""
    old = before.by_revision.get(ref, RevisionSample(0, 0, None))
    new = after.by_revision.get(ref, RevisionSample(0, 0, None))
    if new.requests < old.requests or new.errors < old.errors:
        return new
    return RevisionSample(new.requests - old.requests, new.errors - old.errors, new.p99_ms)


def judge(sample: RevisionSample, *, max_error_rate: float | None, max_p99_ms: float | None,
          what: str) -> Verdict:
    """Compare one revision's window with the thresholds."""
    values: dict[str, Any] = {"requests": sample.requests, "errors": sample.errors,
                              "error_rate": sample.error_rate, "p99_ms": sample.p99_ms,
                              "max_error_rate": max_error_rate, "max_p99_ms": max_p99_ms}
    if sample.requests == 0:
        return Verdict(Outcome.INCONCLUSIVE, f"{what}: no requests in the window", values)
    problems = []
    rate = sample.error_rate or 0.0
    if max_error_rate is not None and rate > max_error_rate:
        problems.append(f"error rate {rate:.3g} > {max_error_rate:g}")
    if max_p99_ms is not None and sample.p99_ms is not None and sample.p99_ms > max_p99_ms:
        problems.append(f"p99 {sample.p99_ms:.3g} ms > {max_p99_ms:g} ms")
    if problems:
        return Verdict(Outcome.FAIL, f"{what}: " + ", ".join(problems), values)
    return Verdict(Outcome.PASS, f"{what}: {sample.requests} requests, error rate {rate:.3g}", values)


def compare(stable: RevisionSample, canary: RevisionSample, *, max_error_rate: float,
            max_p99_ms: float | None) -> Verdict:
    """Canary analysis: the canary must meet the thresholds; stable's values are kept beside
    it as the baseline a person compares with."""
    verdict = judge(canary, max_error_rate=max_error_rate, max_p99_ms=max_p99_ms, what="canary")
    values = {**verdict.values, "stable_requests": stable.requests, "stable_error_rate": stable.error_rate,
              "stable_p99_ms": stable.p99_ms}
    return Verdict(verdict.outcome, verdict.reason, values)
