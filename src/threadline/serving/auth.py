"""Who may call the inference routes: control-plane tokens (cached) or a token file.

The data plane never stores tokens: it asks the control plane who a token belongs to and
remembers the answer briefly, so a revoked token stops working within ``ttl`` seconds
without a database round trip per prediction. A standalone server can instead read a
0600 file of tokens, one per line, which it keeps only as hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import stat
import time
from pathlib import Path
from typing import Protocol

import httpx

from threadline import tls
from threadline.domain import errors


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> str | None:
        """The caller's name, or None when the token is not valid."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ControlPlaneTokens:
    """Checks tokens with the control plane, one lookup per token at a time.

    A valid token whose entry has expired keeps working while one background lookup
    refreshes it, so requests never queue behind the control plane once a token is known;
    a revoked token stops working at the refresh (within ``ttl`` plus one lookup).
    """

    def __init__(self, url: str, *, ttl: float = 30.0, negative_ttl: float = 5.0) -> None:
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=10.0,
                                       verify=tls.client_context())
        self._ttl, self._negative_ttl = ttl, negative_ttl
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._lookups: dict[str, asyncio.Task[str | None]] = {}

    async def verify(self, token: str) -> str | None:
        key = _digest(token)
        hit = self._cache.get(key)
        if hit is not None and (hit[1] > time.monotonic() or hit[0] is not None):
            if hit[1] <= time.monotonic():
                self._lookup(key, token)  # refresh in the background; answer from the cache now
            return hit[0]
        return await asyncio.shield(self._lookup(key, token))

    def _lookup(self, key: str, token: str) -> asyncio.Task[str | None]:
        task = self._lookups.get(key)
        if task is None:
            task = self._lookups[key] = asyncio.get_running_loop().create_task(self._ask(key, token))
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: str, task: asyncio.Task[str | None]) -> None:
        self._lookups.pop(key, None)
        if not task.cancelled():
            task.exception()  # a failed background refresh is retried by the next request

    async def _ask(self, key: str, token: str) -> str | None:
        try:
            response = await self._http.get("/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        except httpx.TransportError as exc:
            raise errors.ConfigurationError(f"cannot reach the control plane to check a token: {exc}") from exc
        name = response.json().get("user") if response.status_code == 200 else None
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (name, time.monotonic() + (self._ttl if name else self._negative_ttl))
        return name

    async def close(self) -> None:
        await self._http.aclose()


class TokenFile:
    def __init__(self, path: Path) -> None:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise errors.ConfigurationError(f"token file {path} is readable by others: chmod 600 {path}")
        self._digests = {_digest(line.strip()): f"token-file:{i + 1}"
                         for i, line in enumerate(path.read_text().splitlines()) if line.strip()}
        if not self._digests:
            raise errors.ConfigurationError(f"token file {path} holds no tokens")

    async def verify(self, token: str) -> str | None:
        return self._digests.get(_digest(token))

    async def close(self) -> None:
        return None
