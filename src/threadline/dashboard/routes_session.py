"""Sign in with an API token, sign out.

The sign-in form has its own CSRF secret in a short-lived cookie (there is no session yet to
hold one), so another site cannot sign a browser in under someone else's token.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from threadline.dashboard import web
from threadline.dashboard.session import COOKIE, LOGIN_COOKIE, same_secret
from threadline.domain import errors

router = APIRouter(include_in_schema=False)


def safe_next(path: str | None) -> str:
    """Only a path on this site: never ``//host`` or a full URL (no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_page(request: Request, *, status: int = 200, message: str | None = None, next_path: str = "/") -> Response:
    secret = secrets.token_urlsafe(32)
    response = web.render(request, "login.html", status=status, message=message, next_path=safe_next(next_path),
                          login_csrf=secret)
    response.set_cookie(LOGIN_COOKIE, secret, max_age=3600, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https", path="/login")
    return response


@router.get("/login")
def sign_in_form(request: Request, next: str = "/") -> Response:
    return login_page(request, next_path=next)


@router.post("/login")
async def sign_in(request: Request) -> Response:
    form = await request.form(max_files=0, max_fields=10)
    sent, expected = form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)
    if not expected or not same_secret(sent if isinstance(sent, str) else None, expected):
        raise web.FormRefused()
    next_path = safe_next(form.get("next") if isinstance(form.get("next"), str) else None)  # type: ignore[arg-type]
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    services = request.app.state.services
    context = {"method": "POST", "path": "/login", "client": request.client.host if request.client else "-"}
    try:
        principal = await run_in_threadpool(services.identity.authenticate, token, context=context)
    except errors.Unauthorized:
        return login_page(request, status=401, next_path=next_path,
                          message="That token was not accepted: it is unknown, expired or revoked, or its user "
                                  "is disabled. Paste a valid API token (tl_...).")
    await run_in_threadpool(_audit_sign_in, request, principal.name)
    response = RedirectResponse(next_path, status_code=303)
    codec = web.codec(request)
    response.set_cookie(COOKIE, codec.seal(token), max_age=codec.lifetime_seconds, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _audit_sign_in(request: Request, name: str) -> None:
    services = request.app.state.services
    with services.store.writing() as tx:
        services.audit.record(tx, name, "dashboard.signin", "/login",
                              {"client": request.client.host if request.client else "-"})


@router.post("/logout")
def sign_out(_form: web.CheckedForm) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
