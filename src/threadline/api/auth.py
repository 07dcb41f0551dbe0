"""Authentication and authorisation for every route.

A route declares the one Permission it needs with ``Depends(allow(Permission.X))``; the
roles that hold it come from ``domain.access.PERMISSIONS``, the app publishes both in the
OpenAPI operation (``x-permission``, ``x-roles``), and a test walks that spec to prove every
route refuses a missing token (401) and a token without the role (403). A fresh TOTP code
for step-up actions comes in the ``X-Threadline-OTP`` header.
"""

from __future__ import annotations

from typing import Annotated, Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from threadline.domain import access
from threadline.identity.service import Identity, Principal

OTP_HEADER = "X-Threadline-OTP"
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tl_...`")
_otp = APIKeyHeader(name=OTP_HEADER, auto_error=False, scheme_name="TOTP",
                    description="A fresh TOTP code, for actions that need MFA step-up.")


async def authenticated(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    identity: Identity = request.app.state.services.identity
    secret = credentials.credentials if credentials else None
    principal = identity.cached(secret)
    if principal is None:
        client = request.client.host if request.client else "-"
        context = {"method": request.method, "path": request.url.path, "client": client}
        principal = await run_in_threadpool(identity.authenticate, secret, context=context)
    request.state.actor_name = principal.name  # refusals after this point are audited with it
    return principal


def allow(permission: access.Permission) -> Callable[..., Awaitable[access.Actor]]:
    """The dependency a route needs: an authenticated caller holding ``permission``."""

    async def authorized(request: Request, principal: Annotated[Principal, Depends(authenticated)],
                         otp: Annotated[str | None, Depends(_otp)]) -> access.Actor:
        actor = principal.actor()
        actor.require(permission)
        if otp:
            await run_in_threadpool(request.app.state.services.mfa.verify, principal.user, otp)
            actor = principal.actor(mfa_verified=True)
        return actor

    authorized.permission = permission  # type: ignore[attr-defined]  # read by the OpenAPI publisher
    return authorized


def permission_of(dependency: object) -> access.Permission | None:
    return getattr(dependency, "permission", None)


def needs(permission: access.Permission) -> type[access.Actor]:
    """``actor: needs(Permission.X)`` in a route signature."""
    return Annotated[access.Actor, Depends(allow(permission))]  # type: ignore[return-value]
