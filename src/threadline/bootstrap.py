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
from threadline.adapters.signing import Ed25519Signer
from threadline.adapters.sql.store import SqlMetadataStore
from threadline.audit.log import AuditLog
from threadline.domain import errors
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

    def close(self) -> None:
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
    registry = Registry(store, artifacts, audit, clock, settings.workdir)
    identity = Identity(store, audit, clock)
    return Services(settings, store, artifacts, signer, audit, registry, identity)


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
