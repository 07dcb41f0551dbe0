"""Context bundles from a serving process to the control plane, durably.

A client told that its prediction was escalated must be able to count on a reviewer seeing
it, even if the serving process is killed a millisecond later. So a bundle is written to
the spool folder (temporary name, fsync, rename, fsync of the folder) *before* the response
leaves, and a background thread posts spooled bundles to the control plane, deleting each
one only once the control plane acknowledged it. A process started later on the same spool
(the restarted replica) ships what an earlier one left behind. Posting is idempotent (the
bundle id is the prediction id), so a bundle sent twice after a crash is stored once.

The spool is bounded: when it holds ``max_files`` bundles (the control plane has been away
for long), ``put`` refuses, the prediction is answered as not escalated, and the refusal is
counted: a client is never told "escalated" for a bundle that was not kept.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import httpx
import orjson

from threadline import tls

log = logging.getLogger("threadline.serving.bundles")


class BundleSpool:
    def __init__(self, folder: Path, *, max_files: int = 10_000) -> None:
        self.folder = folder
        self._max_files = max_files
        folder.mkdir(parents=True, exist_ok=True)
        self._count = len(self.pending())
        self._lock = threading.Lock()

    def pending(self) -> list[Path]:
        return sorted(self.folder.glob("*.json"))

    def put(self, bundle_id: str, draft: Mapping[str, Any]) -> bool:
        """Keep ``draft`` on disk; False when the spool is full (nothing was written)."""
        with self._lock:
            if self._count >= self._max_files:
                return False
            self._count += 1
        data = orjson.dumps(draft, option=orjson.OPT_SERIALIZE_NUMPY)
        temporary = self.folder / f".{bundle_id}.{secrets.token_hex(4)}.tmp"
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.folder / f"{bundle_id}.json")
            directory = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError:
            temporary.unlink(missing_ok=True)
            with self._lock:
                self._count -= 1
            raise
        return True

    def done(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        with self._lock:
            self._count = max(self._count - 1, 0)


class BundleShipper:
    """Posts spooled bundles to ``POST {control_plane}/api/v1/bundles`` until each is acknowledged."""

    def __init__(self, spool: BundleSpool, control_plane: str, token: str | None, *, interval: float = 0.5,
                 on_shipped: Callable[[int], None] = lambda _n: None) -> None:
        self._spool = spool
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=control_plane, headers=headers, timeout=10.0,
                                  verify=tls.client_context())
        self._interval = interval
        self._on_shipped = on_shipped
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bundle-shipper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """A bundle was spooled: ship it now rather than at the next interval."""
        self._wake.set()

    def close(self, *, drain_seconds: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=drain_seconds + 10)
        self._http.close()

    def ship_pending(self) -> int:
        """Post every spooled bundle once; return how many were acknowledged."""
        shipped = 0
        for path in self._spool.pending():
            try:
                body = path.read_bytes()
            except FileNotFoundError:  # shipped meanwhile by another replica on the same spool
                continue
            try:
                response = self._http.post("/api/v1/bundles", content=body,
                                           headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                log.warning("control plane unreachable, %d bundles wait in %s (%s)", len(self._spool.pending()),
                            self._spool.folder, type(exc).__name__)
                return shipped
            if response.status_code in (200, 201):
                self._spool.done(path)
                shipped += 1
            elif 400 <= response.status_code < 500 and response.status_code not in (401, 403, 408, 429):
                # The control plane will never take it: keep it aside for a person, stop retrying.
                rejected = path.with_suffix(".rejected")
                os.replace(path, rejected)
                self._spool.done(path)
                log.error("control plane refused bundle %s (HTTP %d: %s); kept as %s", path.stem,
                          response.status_code, response.text[:300], rejected)
            else:
                log.warning("control plane answered HTTP %d to bundle %s; retrying", response.status_code,
                            path.stem)
                return shipped
        if shipped:
            self._on_shipped(shipped)
        return shipped

    def _run(self) -> None:
        backoff = self._interval
        while True:
            stopping = self._stop.is_set()
            try:
                self.ship_pending()
                backoff = self._interval if not self._spool.pending() else min(backoff * 2, 30.0)
            except Exception:  # never let the shipper die: the spool keeps everything
                log.exception("shipping bundles failed")
            if stopping:
                return
            self._wake.wait(backoff)
            self._wake.clear()
