"""Traffic split between the versions of one served model (stable and canary).

Smooth weighted round-robin (as in nginx) makes the split exact: over every run of
``sum(weights)`` requests each version gets exactly its weight, interleaved rather than in
blocks. A request key (a user or session id) makes the choice sticky instead: the key's
hash picks the same version every time, and the shares hold in expectation.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Mapping

from threadline.domain import errors


class TrafficSplit:
    def __init__(self, weights: Mapping[int, int]) -> None:
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise errors.InvalidInput(f"traffic weights must be non-negative and not all zero: {dict(weights)}")
        self.weights = dict(sorted(weights.items()))
        self._total = sum(self.weights.values())
        self._current = {version: 0 for version in self.weights}
        self._lock = threading.Lock()

    def choose(self, key: str | None = None) -> int:
        if len(self.weights) == 1:
            return next(iter(self.weights))
        if key is not None:
            return self._by_key(key)
        with self._lock:
            for version, weight in self.weights.items():
                self._current[version] += weight
            chosen = max(self._current, key=lambda v: (self._current[v], -v))
            self._current[chosen] -= self._total
            return chosen

    def _by_key(self, key: str) -> int:
        point = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % self._total
        for version, weight in self.weights.items():
            if point < weight:
                return version
            point -= weight
        return next(reversed(self.weights))  # not reached: point < total
