"""Authentication for every route: a bearer token checked against the identity service.

Routes declare ``Depends(authenticated)``; the app test walks the OpenAPI spec to prove
that no route forgot it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from threadline.identity.service import Identity, Principal

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tl_...`")


def authenticated(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    identity: Identity = request.app.state.services.identity
    client = request.client.host if request.client else "-"
    context = {"method": request.method, "path": request.url.path, "client": client}
    return identity.authenticate(credentials.credentials if credentials else None, context=context)


Caller = Annotated[Principal, Depends(authenticated)]
