"""The composition root: settings -> adapters -> services -> apps.

This is the one place that knows which adapter backs which port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from threadline import ports
from threadline.adapters.artifacts.local import LocalArtifactStore
from threadline.adapters.clock import SystemClock
from threadline.adapters.secretbox import SecretBox
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.adapters.webhooks import WebhookDispatcher
from threadline.audit.log import AuditLog
from threadline.domain import errors
from threadline.governance.reports import Reports, Retention
from threadline.governance.service import Governance
from threadline.identity.mfa import Mfa
from threadline.identity.service import Identity
from threadline.registry.service import Registry
from threadline.settings import Settings


@dataclass
class Services:
    settings: Settings
    store: SqlMetadataStore
    artifacts: ports.ArtifactStore
    signer: Ed25519Signer
    audit: AuditLog
    registry: Registry
    identity: Identity
    mfa: Mfa
    governance: Governance
    reports: Reports
    webhooks: WebhookDispatcher | None

    def close(self) -> None:
        if self.webhooks is not None:
            self.webhooks.stop()
        self.store.close()


def artifact_store(url: str, settings: Settings) -> ports.ArtifactStore:
    if url.startswith("s3://"):
        from threadline.adapters.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore.from_url(url, endpoint_url=settings.s3_endpoint_url)
    if url.startswith("file://"):
        url = url[len("file://"):]
    if "://" in url:
        raise errors.ConfigurationError(
            f"unsupported artifacts URL {url.split('://')[0]}://...: use a folder path, file://PATH or "
            "s3://BUCKET/PREFIX")
    return LocalArtifactStore(Path(url).expanduser())


def build(settings: Settings) -> Services:
    home = settings.resolved_home
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    clock = SystemClock()
    store = SqlMetadataStore(settings.resolved_database_url)
    artifacts = artifact_store(settings.resolved_artifacts_url, settings)
    signer = Ed25519Signer.load_or_create(settings.resolved_audit_key_path)
    audit = AuditLog(signer, clock, checkpoint_every=settings.audit_checkpoint_every)
    governance = Governance(store, audit, clock, webhooks=bool(settings.webhook_urls))
    registry = Registry(store, artifacts, audit, clock, settings.workdir, alias_guard=governance.guard_alias)
    identity = Identity(store, audit, clock)
    mfa = Mfa(store, audit, clock, SecretBox.load_or_create(settings.secrets_key_path))
    reports = Reports(store, audit, governance, clock, signer,
                      Retention(settings.audit_retention_days, settings.prediction_log_retention_days), tls=False)
    return Services(settings, store, artifacts, signer, audit, registry, identity, mfa, governance, reports,
                    _webhooks(settings, store, clock))


def _webhooks(settings: Settings, store: SqlMetadataStore, clock: SystemClock) -> WebhookDispatcher | None:
    if not settings.webhook_urls:
        return None
    if settings.webhook_secret is None:
        raise errors.ConfigurationError("THREADLINE_WEBHOOK_URLS is set but THREADLINE_WEBHOOK_SECRET is not: "
                                        "receivers need it to check that notifications come from Threadline")
    return WebhookDispatcher(store, clock, settings.webhook_urls,
                             settings.webhook_secret.get_secret_value().encode("utf-8"))


def write_admin_token(services: Services) -> Path | None:
    """On first start, create the admin and write its token to a 0600 file; never print it."""
    issued = services.identity.bootstrap_admin()
    path = services.settings.admin_token_path
    if issued is None:
        return path if path.exists() else None
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(issued.secret + "\n")
    os.chmod(path, 0o600)
    return path
