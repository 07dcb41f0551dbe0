"""Authentication for every route: a bearer token checked against the identity service.

Routes declare ``Depends(authenticated)``; the app test walks the OpenAPI spec to prove
that no route forgot it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from threadline.identity.service import Identity, Principal

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tl_...`")


async def authenticated(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    identity: Identity = request.app.state.services.identity
    secret = credentials.credentials if credentials else None
    principal = identity.cached(secret)
    if principal is not None:
        return principal
    client = request.client.host if request.client else "-"
    context = {"method": request.method, "path": request.url.path, "client": client}
    return await run_in_threadpool(identity.authenticate, secret, context=context)


Caller = Annotated[Principal, Depends(authenticated)]
