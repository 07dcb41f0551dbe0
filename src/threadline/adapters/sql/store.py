"""The metadata store over SQLAlchemy Core: SQLite or PostgreSQL, one code path.

Every write transaction first locks the audit chain head (``BEGIN IMMEDIATE`` on SQLite,
``SELECT ... FOR UPDATE`` on PostgreSQL). That one lock makes writers take turns, which
keeps the audit chain linear and version numbers gap-free across threads and processes,
and it is cheap because registry writes are rare next to reads.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from typing import Any, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from threadline.adapters.sql import engine as engines
from threadline.adapters.sql import migrate, records
from threadline.adapters.sql import schema as t
from threadline.domain import errors, hashchain, models


# Hot-path statements are built once: composing a SQLAlchemy expression per call costs more
# than running the query on SQLite.
# Every version column but the (large) profile, which has its own read.
_VERSION_COLUMNS = (*(c for c in t.model_versions.c if c.name != "profile"),
                    t.model_versions.c.profile.is_not(None).label("has_profile"))
_VERSION = (sa.select(*_VERSION_COLUMNS).join(t.models)
            .where(t.models.c.name == sa.bindparam("name"),
                   t.model_versions.c.version == sa.bindparam("version")))
_VERSION_BY_ALIAS = (sa.select(*_VERSION_COLUMNS)
                     .join(t.models, t.models.c.id == t.model_versions.c.model_id)
                     .join(t.aliases, (t.aliases.c.model_id == t.model_versions.c.model_id)
                           & (t.aliases.c.version == t.model_versions.c.version))
                     .where(t.models.c.name == sa.bindparam("name"), t.aliases.c.alias == sa.bindparam("alias")))
_USER_BY_TOKEN = (sa.select(t.tokens, t.users.c.name.label("user_name"), t.users.c.roles,
                            t.users.c.disabled, t.users.c.created_at.label("user_created_at"))
                  .join(t.users).where(t.tokens.c.token_hash == sa.bindparam("digest")))


class SqlReadTransaction:
    def __init__(self, connection: sa.Connection) -> None:
        self._c = connection

    def _model_id(self, name: str) -> int:
        model_id = self._c.execute(sa.select(t.models.c.id).where(t.models.c.name == name)).scalar()
        if model_id is None:
            raise errors.NotFound(f"model {name!r} not found")
        return int(model_id)

    def get_model(self, name: str) -> models.Model:
        row = self._c.execute(sa.select(t.models).where(t.models.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f"model {name!r} not found")
        return records.model(row)

    def list_models(self, *, query: str | None, owner: str | None, limit: int,
                    after: str | None) -> list[models.Model]:
        stmt = sa.select(t.models).order_by(t.models.c.name).limit(limit)
        if query:
            pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(sa.or_(t.models.c.name.like(pattern, escape="\\"),
                                     t.models.c.description.like(pattern, escape="\\")))
        if owner:
            stmt = stmt.where(t.models.c.owner == owner)
        if after:
            stmt = stmt.where(t.models.c.name > after)
        return [records.model(row) for row in self._c.execute(stmt)]

    def get_version(self, name: str, version: int) -> models.ModelVersion:
        row = self._c.execute(_VERSION, {"name": name, "version": version}).first()
        if row is None:
            self._model_id(name)
            raise errors.NotFound(f"model {name!r} has no version {version}")
        return records.version(row, name)

    def get_version_by_alias(self, name: str, alias: str) -> models.ModelVersion:
        row = self._c.execute(_VERSION_BY_ALIAS, {"name": name, "alias": alias}).first()
        if row is None:
            self.resolve_alias(name, alias)  # raises NotFound naming the model or the alias
            raise errors.NotFound(f"model {name!r} alias {alias!r} points at a missing version")
        return records.version(row, name)

    def get_profile(self, name: str, version: int) -> Mapping[str, Any] | None:
        stmt = (sa.select(t.model_versions.c.profile).join(t.models)
                .where(t.models.c.name == name, t.model_versions.c.version == version))
        row = self._c.execute(stmt).first()
        if row is None:
            self.get_version(name, version)  # raises NotFound naming the model or version
        return None if row is None else row.profile

    def list_versions(self, name: str, *, limit: int, after: int | None) -> list[models.ModelVersion]:
        model_id = self._model_id(name)
        stmt = (sa.select(*_VERSION_COLUMNS).where(t.model_versions.c.model_id == model_id)
                .order_by(t.model_versions.c.version).limit(limit))
        if after is not None:
            stmt = stmt.where(t.model_versions.c.version > after)
        return [records.version(row, name) for row in self._c.execute(stmt)]

    def latest_version(self, name: str) -> int | None:
        model_id = self._model_id(name)
        stmt = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.model_id == model_id)
        latest = self._c.execute(stmt).scalar()
        return None if latest is None else int(latest)

    def resolve_alias(self, name: str, alias: str) -> int:
        stmt = (sa.select(t.aliases.c.version).join(t.models)
                .where(t.models.c.name == name, t.aliases.c.alias == alias))
        version = self._c.execute(stmt).scalar()
        if version is None:
            self._model_id(name)
            raise errors.NotFound(f"model {name!r} has no alias {alias!r}")
        return int(version)

    def aliases(self, name: str) -> dict[str, int]:
        model_id = self._model_id(name)
        stmt = sa.select(t.aliases.c.alias, t.aliases.c.version).where(t.aliases.c.model_id == model_id)
        return {row.alias: row.version for row in self._c.execute(stmt.order_by(t.aliases.c.alias))}

    def audit_head(self) -> tuple[int, str] | None:
        row = self._c.execute(sa.select(t.audit_head.c.seq, t.audit_head.c.hash)
                              .where(t.audit_head.c.id == 1)).first()
        return None if row is None or row.seq == 0 else (int(row.seq), row.hash)

    def audit_entries(self, *, after: int, limit: int) -> list[hashchain.AuditEntry]:
        stmt = (sa.select(t.audit_entries).where(t.audit_entries.c.seq > after)
                .order_by(t.audit_entries.c.seq).limit(limit))
        return [records.audit_entry(row) for row in self._c.execute(stmt)]

    def audit_checkpoints(self) -> list[hashchain.Checkpoint]:
        stmt = sa.select(t.audit_checkpoints).order_by(t.audit_checkpoints.c.seq)
        return [records.checkpoint(row) for row in self._c.execute(stmt)]

    def user_by_token(self, token_digest: str) -> tuple[models.User, models.Token] | None:
        row = self._c.execute(_USER_BY_TOKEN, {"digest": token_digest}).first()
        if row is None:
            return None
        user = models.User(id=row.user_id, name=row.user_name, roles=tuple(row.roles),
                           disabled=bool(row.disabled), created_at=records.utc(row.user_created_at))
        return user, records.token(row)

    def user_by_name(self, name: str) -> models.User:
        row = self._c.execute(sa.select(t.users).where(t.users.c.name == name)).first()
        if row is None:
            raise errors.NotFound(f"user {name!r} not found")
        return records.user(row)

    def count_users(self) -> int:
        return int(self._c.execute(sa.select(sa.func.count()).select_from(t.users)).scalar() or 0)


class SqlWriteTransaction(SqlReadTransaction):
    def add_model(self, model: models.Model) -> None:
        try:
            with self._c.begin_nested():
                self._c.execute(t.models.insert().values(
                    name=model.name, owner=model.owner, risk_tier=model.risk_tier.value,
                    description=model.description, created_by=model.created_by,
                    created_at=model.created_at))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"model {model.name!r} already exists") from exc

    def add_version(self, version: models.ModelVersion, profile: Mapping[str, Any] | None) -> None:
        model_id = self._model_id(version.model)
        try:
            with self._c.begin_nested():
                self._c.execute(t.model_versions.insert().values(
                    records.version_values(version, model_id, profile)))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"model {version.model!r} already has version {version.version}") from exc

    def set_status(self, name: str, version: int, status: str) -> None:
        model_id = self._model_id(name)
        result = self._c.execute(t.model_versions.update()
                                 .where(t.model_versions.c.model_id == model_id,
                                        t.model_versions.c.version == version)
                                 .values(status=status))
        if result.rowcount == 0:
            raise errors.NotFound(f"model {name!r} has no version {version}")

    def set_alias(self, name: str, alias: str, version: int, *, actor: str, time: datetime) -> int | None:
        model_id = self._model_id(name)
        key = (t.aliases.c.model_id == model_id) & (t.aliases.c.alias == alias)
        previous = self._c.execute(sa.select(t.aliases.c.version).where(key)).scalar()
        if previous is None:
            self._c.execute(t.aliases.insert().values(model_id=model_id, alias=alias, version=version,
                                                      updated_by=actor, updated_at=time))
        else:
            self._c.execute(t.aliases.update().where(key).values(version=version, updated_by=actor,
                                                                 updated_at=time))
        return None if previous is None else int(previous)

    def delete_alias(self, name: str, alias: str) -> int:
        previous = self.resolve_alias(name, alias)
        model_id = self._model_id(name)
        self._c.execute(t.aliases.delete().where(t.aliases.c.model_id == model_id, t.aliases.c.alias == alias))
        return previous

    def append_audit(self, entry: hashchain.AuditEntry) -> None:
        self._c.execute(t.audit_entries.insert().values(records.audit_values(entry)))
        self._c.execute(t.audit_head.update().where(t.audit_head.c.id == 1)
                        .values(seq=entry.seq, hash=entry.hash))

    def add_checkpoint(self, checkpoint: hashchain.Checkpoint) -> None:
        self._c.execute(t.audit_checkpoints.insert().values(
            seq=checkpoint.seq, hash=checkpoint.hash, time=checkpoint.time, key_id=checkpoint.key_id,
            signature=checkpoint.signature))

    def add_user(self, name: str, roles: tuple[str, ...], *, time: datetime) -> models.User:
        try:
            with self._c.begin_nested():
                result = self._c.execute(t.users.insert().values(
                    name=name, roles=list(roles), disabled=False, created_at=time))
        except sa_exc.IntegrityError as exc:
            raise errors.Conflict(f"user {name!r} already exists") from exc
        return models.User(id=int(result.inserted_primary_key[0]), name=name, roles=roles,
                           disabled=False, created_at=time)

    def add_token(self, user_id: int, name: str, token_digest: str, prefix: str, *,
                  time: datetime, expires_at: datetime | None) -> models.Token:
        result = self._c.execute(t.tokens.insert().values(
            user_id=user_id, name=name, token_hash=token_digest, prefix=prefix, created_at=time,
            expires_at=expires_at, revoked_at=None))
        return models.Token(id=int(result.inserted_primary_key[0]), user_id=user_id, name=name,
                            prefix=prefix, created_at=time, expires_at=expires_at, revoked_at=None)


class SqlMetadataStore:
    """MetadataStore over one SQLAlchemy engine; migrations run at construction."""

    def __init__(self, url: str, *, migrate_schema: bool = True) -> None:
        self.url = url
        self.engine = engines.create(url)
        self._postgres = self.engine.dialect.name == "postgresql"
        try:
            if migrate_schema:
                migrate.upgrade(self.engine)
        except sa_exc.OperationalError as exc:
            self.engine.dispose()
            raise errors.ConfigurationError(
                f"cannot reach the metadata database {engines.redact(url)}: {_first_line(exc)}") from exc

    @contextmanager
    def reading(self) -> Iterator[SqlReadTransaction]:
        # A snapshot: a reader walking the audit chain must not see a writer's later rows.
        options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"} if self._postgres else {}
        with _translated(), self.engine.connect().execution_options(**options) as connection:
            with connection.begin():
                yield SqlReadTransaction(connection)

    @contextmanager
    def writing(self) -> Iterator[SqlWriteTransaction]:
        options: dict[str, Any] = {engines.WRITE_OPTION: True}
        with _translated(), self.engine.connect().execution_options(**options) as connection:
            with connection.begin():
                # Serialise writers on the chain head (a no-op clause on SQLite, which
                # already holds the write lock from BEGIN IMMEDIATE).
                connection.execute(sa.select(t.audit_head.c.seq).where(t.audit_head.c.id == 1)
                                   .with_for_update())
                yield SqlWriteTransaction(connection)

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except sa_exc.OperationalError as exc:
        raise errors.ConfigurationError(f"metadata database error: {_first_line(exc)}") from exc


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)) or type(exc).__name__
    return text.strip().splitlines()[0]
