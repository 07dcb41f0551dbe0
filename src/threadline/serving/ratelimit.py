"""Per-token rate limits: a token bucket per caller, answered with 429 and Retry-After."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``rate`` requests per second sustained, bursts of up to ``burst``; ``rate <= 0`` disables."""

    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] | None = None, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock or time.monotonic
        self._buckets: dict[str, _Bucket] = {}
        self._max_keys = max_keys
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Spend one token; 0.0 when allowed, otherwise the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._buckets.clear()  # bounded memory; every caller starts with a full bucket
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))

