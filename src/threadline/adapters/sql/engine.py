"""Engines for the metadata database, chosen by URL.

SQLite gets WAL (readers never wait for the writer), foreign keys and a busy timeout, and
write transactions start with ``BEGIN IMMEDIATE`` so two writers queue instead of failing
with "database is locked" half-way through. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from threadline.domain import errors

WRITE_OPTION = "threadline_write"
_JSON: dict[str, Any] = {
    "json_serializer": lambda value: orjson.dumps(value).decode(),
    "json_deserializer": orjson.loads,
}


def create(url: str, *, pool_size: int = 10) -> sa.Engine:
    if url.startswith("sqlite"):
        return _sqlite(url)
    if url.startswith(("postgresql", "postgres")):
        return _postgres(url, pool_size)
    raise errors.ConfigurationError(
        f"unsupported database URL scheme in {redact(url)!r}: use sqlite:///PATH or postgresql://..."
    )


def _sqlite(url: str) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False}, **_JSON)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres(url: str, pool_size: int) -> sa.Engine:
    errors.require_module("psycopg", extra="postgres", feature="the PostgreSQL metadata store")
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **_JSON)


def redact(url: str) -> str:
    """Hide the password of a database URL before it goes into a message."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: say nothing of its content
        return "<unparsable URL>"

