"""Identity routes: who am I, users (admins), tokens (your own, or anyone's for admins), MFA."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from threadline.api.auth import needs
from threadline.api.dto import Strict
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain import access, models
from threadline.domain.access import Permission

router = APIRouter(prefix="/api/v1", tags=["identity"])


class UserIn(Strict):
    name: str
    roles: list[access.Role] = Field(default_factory=list, max_length=len(access.Role))
    teams: list[str] = Field(default_factory=list, max_length=50)


class UserPatch(Strict):
    roles: list[access.Role] | None = Field(default=None, max_length=len(access.Role))
    teams: list[str] | None = Field(default=None, max_length=50)
    disabled: bool | None = None


class TokenIn(Strict):
    name: str
    user: str | None = Field(default=None, description="Default: yourself. Admins may name anyone.")
    expires_in_days: int | None = Field(default=90, ge=1, le=3650,
                                        description="null: never expires (admins only).")


class CodeIn(Strict):
    code: str = Field(min_length=6, max_length=6)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def user_json(user: models.User) -> dict[str, Any]:
    return {"name": user.name, "roles": list(user.roles), "teams": list(user.teams), "disabled": user.disabled,
            "created_at": user.created_at}


def token_json(user: str, token: models.Token) -> dict[str, Any]:
    return {"id": token.id, "user": user, "name": token.name, "prefix": token.prefix,
            "created_at": token.created_at, "expires_at": token.expires_at, "revoked_at": token.revoked_at}


@router.get("/whoami", tags=["meta"])
async def whoami(actor: needs(Permission.SELF_SERVICE)) -> JSON:
    """Who the token belongs to; the data plane uses it to check inference tokens."""
    return JSON({"user": actor.name, "roles": sorted(r.value for r in actor.roles), "teams": sorted(actor.teams)})


@router.get("/users")
def list_users(request: Request, actor: needs(Permission.MANAGE_USERS)) -> JSON:
    return JSON({"items": [user_json(u) for u in _services(request).identity.list_users(actor)]})


@router.post("/users", status_code=201)
def create_user(request: Request, actor: needs(Permission.MANAGE_USERS), body: UserIn) -> JSON:
    user = _services(request).identity.create_user(actor, body.name, tuple(body.roles), tuple(body.teams))
    return JSON(user_json(user), status_code=201)


@router.patch("/users/{name}")
def update_user(request: Request, actor: needs(Permission.MANAGE_USERS), name: str, body: UserPatch) -> JSON:
    """Change roles, teams or the disabled flag; a disabled user's tokens stop working."""
    user = _services(request).identity.update_user(
        actor, name, roles=None if body.roles is None else tuple(body.roles),
        teams=None if body.teams is None else tuple(body.teams), disabled=body.disabled)
    return JSON(user_json(user))


@router.get("/tokens")
def list_tokens(request: Request, actor: needs(Permission.SELF_SERVICE), user: str | None = None) -> JSON:
    """Your tokens (admins: everyone's, or one user's); never the secrets, which are not stored."""
    found = _services(request).identity.list_tokens(actor, user)
    return JSON({"items": [token_json(name, token) for name, token in found]})


@router.post("/tokens", status_code=201)
def create_token(request: Request, actor: needs(Permission.SELF_SERVICE), body: TokenIn) -> JSON:
    """A new token; the response is the only time its secret is shown."""
    expires = None if body.expires_in_days is None else timedelta(days=body.expires_in_days)
    issued = _services(request).identity.issue_token(actor, body.user or actor.name, body.name, expires)
    return JSON({**token_json(body.user or actor.name, issued.token), "token": issued.secret}, status_code=201)


@router.delete("/tokens/{token_id}")
def revoke_token(request: Request, actor: needs(Permission.SELF_SERVICE), token_id: int) -> JSON:
    token = _services(request).identity.revoke_token(actor, token_id)
    return JSON({"id": token.id, "revoked_at": token.revoked_at})


@router.post("/mfa/enroll")
def mfa_enroll(request: Request, actor: needs(Permission.SELF_SERVICE)) -> JSON:
    """Start TOTP enrolment: the secret and otpauth URI are shown this once; confirm with a code."""
    enrolment = _services(request).mfa.enroll(actor)
    return JSON({"secret": enrolment.secret, "uri": enrolment.uri})


@router.post("/mfa/confirm")
def mfa_confirm(request: Request, actor: needs(Permission.SELF_SERVICE), body: CodeIn) -> JSON:
    _services(request).mfa.confirm(actor, body.code)
    return JSON({"enrolled": True})
