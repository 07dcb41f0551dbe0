"""Deliver queued webhook notifications: HMAC-signed POSTs, retried with backoff.

Notifications are queued in the database in the transaction of the change they announce
(the outbox), so a crash never loses one and never sends one for a change that rolled back.
A background thread delivers them; a receiver may see one twice after a crash mid-send,
and dedupes by the ``X-Threadline-Delivery`` id (and, for alerts, by ``Idempotency-Key``,
which is the same for every delivery of one notification). A message either names its one
receiver (an alert route from a deployment spec) or goes to every configured URL. The signature is
``X-Threadline-Signature: sha256=<hex HMAC of the body>``, the scheme GitHub uses.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
from datetime import timedelta

import httpx

from threadline import ports
from threadline.domain import models

log = logging.getLogger("threadline.webhooks")

MAX_ATTEMPTS = 10
_GIVE_UP = timedelta(days=36500)  # abandoned messages stay for inspection but are never due again


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookDispatcher:
    def __init__(self, store: ports.MetadataStore, clock: ports.Clock, urls: list[str], secret: bytes, *,
                 interval: float = 1.0, timeout: float = 5.0) -> None:
        self._store = store
        self._clock = clock
        self._urls = urls
        self._secret = secret
        self._interval = interval
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._http.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # the next round retries; a broken database must not kill the thread
                log.exception("webhook delivery round failed")
            self._stop.wait(self._interval)

    def deliver_due(self) -> int:
        """Send every due message once; return how many were delivered."""
        with self._store.reading() as tx:
            due = tx.due_webhooks(self._clock.now(), 50)
        delivered = 0
        for message in due:
            error = self._send(message)
            attempts = message.attempts + 1
            now = self._clock.now()
            if error is None:
                delivered += 1
                next_at = now
            elif attempts >= MAX_ATTEMPTS:
                log.warning("giving up on webhook %s (%s) after %d attempts: %s", message.id, message.event,
                            attempts, error)
                next_at = now + _GIVE_UP
            else:
                next_at = now + timedelta(seconds=min(2 ** attempts, 300))
            with self._store.writing() as tx:
                tx.webhook_attempted(message.id, attempts=attempts, delivered_at=now if error is None else None,
                                     next_attempt_at=next_at, error=error)
        return delivered

    def _send(self, message: models.WebhookMessage) -> str | None:
        body = message.payload.encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Threadline-Event": message.event,
                   "X-Threadline-Delivery": str(message.id), "X-Threadline-Signature": signature(self._secret, body)}
        if message.idempotency_key:
            headers["Idempotency-Key"] = message.idempotency_key
        for url in [message.url] if message.url else self._urls:
            try:
                response = self._http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                return f"{_host(url)}: {type(exc).__name__}"
            if response.status_code >= 300:
                return f"{_host(url)}: HTTP {response.status_code}"
        return None


def _host(url: str) -> str:
    """Errors name the host only: a webhook URL may carry a secret in its path or query."""
    return httpx.URL(url).host or "webhook"
