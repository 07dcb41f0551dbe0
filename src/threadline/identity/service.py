"""Users and API tokens: issue, authenticate, bootstrap the first admin.

A token is shown once, when issued, and only its hash is stored. Failed authentication is
audited with the reason and never with the presented token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import errors, models, names, tokens

ADMIN_USER = "admin"
# A verified token is trusted from memory for this long, so reads need no database round
# trip for authentication. Revocation in this process takes effect at once (the entry is
# dropped); other processes see it within this window.
CACHE_SECONDS = 10.0
_CACHE_LIMIT = 10_000


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: models.User
    token: models.Token

    @property
    def name(self) -> str:
        return self.user.name


@dataclass(frozen=True)
class IssuedToken:
    token: models.Token
    secret: str


class Identity:
    def __init__(self, store: ports.MetadataStore, audit: AuditLog, clock: ports.Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock
        self._verified: dict[str, tuple[Principal, float]] = {}

    def bootstrap_admin(self) -> IssuedToken | None:
        """Create the first admin and its token when no user exists yet; None otherwise."""
        with self._store.writing() as tx:
            if tx.count_users():
                return None
            now = self._clock.now()
            user = tx.add_user(ADMIN_USER, ("admin",), time=now)
            self._audit.record(tx, "system", "user.create", f"user/{user.name}", {"roles": ["admin"]})
            return self._issue(tx, "system", user, "bootstrap", None)

    def create_user(self, actor: str, name: str, roles: tuple[str, ...]) -> models.User:
        name = names.user_name(name)
        with self._store.writing() as tx:
            user = tx.add_user(name, roles, time=self._clock.now())
            self._audit.record(tx, actor, "user.create", f"user/{name}", {"roles": list(roles)})
        return user

    def issue_token(self, actor: str, user_name: str, name: str,
                    expires_in: timedelta | None = None) -> IssuedToken:
        with self._store.writing() as tx:
            user = tx.user_by_name(names.user_name(user_name, field="user"))
            expires_at = None if expires_in is None else self._clock.now() + expires_in
            return self._issue(tx, actor, user, names.user_name(name, field="token name"), expires_at)

    def _issue(self, tx: ports.WriteTransaction, actor: str, user: models.User, name: str,
               expires_at: datetime | None) -> IssuedToken:
        secret = tokens.generate()
        token = tx.add_token(user.id, name, tokens.digest(secret), tokens.prefix(secret),
                             time=self._clock.now(), expires_at=expires_at)
        self._audit.record(tx, actor, "token.create", f"user/{user.name}/token/{token.id}", {
            "name": name, "prefix": token.prefix,
            "expires_at": None if expires_at is None else expires_at.isoformat()})
        return IssuedToken(token, secret)

    def cached(self, secret: str | None) -> Principal | None:
        """The caller behind a recently verified token, without touching the database."""
        if not secret:
            return None
        hit = self._verified.get(tokens.digest(secret))
        if hit is None or hit[1] < time.monotonic():
            return None
        principal = hit[0]
        expires_at = principal.token.expires_at
        return principal if expires_at is None or expires_at > self._clock.now() else None

    def authenticate(self, secret: str | None, *, context: dict[str, str]) -> Principal:
        """Return the caller behind ``secret`` or raise Unauthorized (and audit the attempt)."""
        reason = self._refusal(secret)
        if isinstance(reason, Principal):
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[tokens.digest(secret or "")] = (reason, time.monotonic() + CACHE_SECONDS)
            return reason
        with self._store.writing() as tx:
            self._audit.record(tx, "anonymous", "auth.denied", context.get("path", "-"),
                               {"reason": reason, **context})
        raise errors.Unauthorized(f"{reason}: send 'Authorization: Bearer <token>' with a valid token")

    def _refusal(self, secret: str | None) -> Principal | str:
        if not secret:
            return "missing token"
        if not tokens.looks_valid(secret):
            return "invalid token"
        with self._store.reading() as tx:
            found = tx.user_by_token(tokens.digest(secret))
        if found is None:
            return "invalid token"
        user, token = found
        if token.revoked_at is not None:
            return "revoked token"
        if token.expires_at is not None and token.expires_at <= self._clock.now():
            return "expired token"
        if user.disabled:
            return "disabled user"
        return Principal(user, token)
