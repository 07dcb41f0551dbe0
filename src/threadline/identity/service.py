"""Users and API tokens: create and manage users, issue and revoke tokens, authenticate.

A token is shown once, when issued, and only its hash is stored. Failed authentication is
audited with the reason and never with the presented token.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from threadline import ports
from threadline.audit.log import AuditLog
from threadline.domain import access, errors, models, names, tokens

ADMIN_USER = "admin"
# A verified token is trusted from memory for this long, so reads need no database round
# trip for authentication. Revocation in this process takes effect at once (the entry is
# dropped); other processes see it within this window.
CACHE_SECONDS = 10.0
_CACHE_LIMIT = 10_000


MAX_TOKEN_LIFETIME = timedelta(days=3650)
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    user: models.User
    token: models.Token

    @property
    def name(self) -> str:
        return self.user.name

    def actor(self, *, mfa_verified: bool = False) -> access.Actor:
        return access.Actor(self.user.name, frozenset(access.roles(list(self.user.roles))),
                            frozenset(self.user.teams), mfa_verified=mfa_verified)


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
        """Create the first admin and its token when no user exists yet; None otherwise.

        The bootstrap token does not expire: it is how an operator gets in to create
        everyone else (and it can be revoked once they have).
        """
        with self._store.writing() as tx:
            if tx.count_users():
                return None
            now = self._clock.now()
            user = tx.add_user(ADMIN_USER, ("admin",), time=now)
            self._audit.record(tx, "system", "user.create", f"user/{user.name}", {"roles": ["admin"]})
            return self._issue(tx, "system", user, "bootstrap", None)

    def service_token(self, name: str, roles: tuple[access.Role, ...], current: str | None) -> str | None:
        """A token for a component of the control plane itself (the GitOps agent's serve
        processes): ``current`` if it still works, else a new one (creating the user once).
        None when ``current`` works, so the caller rewrites its token file only when needed."""
        if current and isinstance(self._refusal(current), Principal):
            return None
        with self._store.writing() as tx:
            try:
                user = tx.user_by_name(name)
            except errors.NotFound:
                user = tx.add_user(name, tuple(r.value for r in roles), time=self._clock.now())
                self._audit.record(tx, "system", "user.create", f"user/{name}",
                                   {"roles": [r.value for r in roles]})
            return self._issue(tx, "system", user, "service", self._clock.now() + DEFAULT_TOKEN_LIFETIME).secret

    # -- users --------------------------------------------------------------------------

    def create_user(self, actor: access.Actor, name: str, roles: tuple[access.Role, ...],
                    teams: tuple[str, ...] = ()) -> models.User:
        actor.require(access.Permission.MANAGE_USERS)
        name = names.user_name(name)
        teams = tuple(names.team_name(team, field="teams") for team in teams)
        with self._store.writing() as tx:
            user = tx.add_user(name, tuple(r.value for r in roles), time=self._clock.now(), teams=teams)
            self._audit.record(tx, actor.name, "user.create", f"user/{name}",
                               {"roles": list(user.roles), "teams": list(teams)})
        return user

    def update_user(self, actor: access.Actor, name: str, *, roles: tuple[access.Role, ...] | None = None,
                    teams: tuple[str, ...] | None = None, disabled: bool | None = None) -> models.User:
        """Change a user's roles, teams or disabled flag (admins only).

        An admin cannot disable themself or drop their own admin role: that is how the last
        admin locks everyone out; another admin has to do it.
        """
        actor.require(access.Permission.MANAGE_USERS)
        name = names.user_name(name)
        if name == actor.name and (disabled or (roles is not None and access.Role.ADMIN not in roles)):
            raise errors.Forbidden("you cannot disable yourself or remove your own admin role: ask another admin")
        checked_teams = None if teams is None else tuple(names.team_name(t, field="teams") for t in teams)
        with self._store.writing() as tx:
            before = tx.user_by_name(name)
            user = tx.update_user(name, roles=None if roles is None else tuple(r.value for r in roles),
                                  teams=checked_teams, disabled=disabled)
            self._audit.record(tx, actor.name, "user.update", f"user/{name}", {
                "roles": list(user.roles), "teams": list(user.teams), "disabled": user.disabled,
                "previous": {"roles": list(before.roles), "teams": list(before.teams),
                             "disabled": before.disabled}})
        self._forget(lambda principal: principal.user.id == user.id)
        return user

    def list_users(self, actor: access.Actor) -> list[models.User]:
        actor.require(access.Permission.MANAGE_USERS)
        with self._store.reading() as tx:
            return tx.list_users()

    # -- tokens -------------------------------------------------------------------------

    def issue_token(self, actor: access.Actor, user_name: str, name: str,
                    expires_in: timedelta | None = DEFAULT_TOKEN_LIFETIME) -> IssuedToken:
        """A new token for ``user_name``: your own, or anyone's if you manage users."""
        user_name = names.user_name(user_name, field="user")
        self._require_self_or_admin(actor, user_name, "create tokens for")
        if expires_in is None and not actor.is_admin:
            raise errors.InvalidInput("only admins may create tokens that never expire; give an expiry",
                                      field="expires_in_days")
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
            raise errors.InvalidInput(f"must be between 1 and {MAX_TOKEN_LIFETIME.days} days",
                                      field="expires_in_days")
        with self._store.writing() as tx:
            user = tx.user_by_name(user_name)
            if user.disabled:
                raise errors.Conflict(f"user {user_name!r} is disabled; enable it before issuing tokens")
            expires_at = None if expires_in is None else self._clock.now() + expires_in
            return self._issue(tx, actor.name, user, names.user_name(name, field="name"), expires_at)

    def _issue(self, tx: ports.WriteTransaction, actor: str, user: models.User, name: str,
               expires_at: datetime | None) -> IssuedToken:
        secret = tokens.generate()
        token = tx.add_token(user.id, name, tokens.digest(secret), tokens.prefix(secret),
                             time=self._clock.now(), expires_at=expires_at)
        self._audit.record(tx, actor, "token.create", f"user/{user.name}/token/{token.id}", {
            "name": name, "prefix": token.prefix,
            "expires_at": None if expires_at is None else expires_at.isoformat()})
        return IssuedToken(token, secret)

    def list_tokens(self, actor: access.Actor, user_name: str | None = None) -> list[tuple[str, models.Token]]:
        """Your tokens; everyone's (or one user's) if you manage users."""
        if user_name is None and not actor.can(access.Permission.MANAGE_USERS):
            user_name = actor.name
        with self._store.reading() as tx:
            if user_name is None:
                return tx.list_tokens(None)
            user_name = names.user_name(user_name, field="user")
            self._require_self_or_admin(actor, user_name, "list the tokens of")
            return tx.list_tokens(tx.user_by_name(user_name).id)

    def revoke_token(self, actor: access.Actor, token_id: int) -> models.Token:
        with self._store.writing() as tx:
            user, token = tx.get_token(token_id)
            self._require_self_or_admin(actor, user.name, "revoke tokens of")
            if token.revoked_at is None:
                tx.revoke_token(token_id, time=self._clock.now())
                self._audit.record(tx, actor.name, "token.revoke", f"user/{user.name}/token/{token_id}",
                                   {"prefix": token.prefix})
            revoked = tx.get_token(token_id)[1]
        self._forget(lambda principal: principal.token.id == token_id)
        return revoked

    @staticmethod
    def _require_self_or_admin(actor: access.Actor, user_name: str, what: str) -> None:
        if user_name != actor.name and not actor.can(access.Permission.MANAGE_USERS):
            raise errors.Forbidden(f"{actor.name} may not {what} {user_name!r}: only admins manage other users")

    def _forget(self, matches: Callable[[Principal], bool]) -> None:
        """Drop cached verifications so a change takes effect at once in this process."""
        for key, (principal, _) in list(self._verified.items()):
            if matches(principal):
                self._verified.pop(key, None)

    # -- authentication -----------------------------------------------------------------

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
