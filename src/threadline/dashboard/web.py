"""What every dashboard page shares: the signed-in viewer, CSRF-checked forms, rendering.

Pages call the same services as the API with the viewer's ``Actor``, so the role checks are
the API's own; this module only turns a cookie into that actor and a template into a page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
import orjson
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse

from threadline import __version__
from threadline.dashboard import formatting
from threadline.dashboard.session import COOKIE, SessionCodec, SessionExpired, SessionInvalid, same_secret
from threadline.domain import access, errors
from threadline.identity.service import Identity, Principal

#: Pages load only this server's own script and styles; no inline script can run.
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(loader=jinja2.PackageLoader("threadline.dashboard", "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                                lstrip_blocks=True)
_templates.filters.update(formatting.FILTERS)
_templates.policies["json.dumps_function"] = lambda value, **_: orjson.dumps(
    value, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(frozen=True)
class Viewer:
    """The person behind the session: who they are, what they may do, their form secret."""

    principal: Principal
    actor: access.Actor
    csrf: str

    def can(self, permission: access.Permission) -> bool:
        return self.actor.can(permission)


class SignInRequired(Exception):
    """No usable session: send the browser to the sign-in page (saying why, if it had one)."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "")
        self.reason = reason


class FormRefused(Exception):
    """A form arrived without this session's CSRF secret (forged, or from a stale page)."""


def codec(request: Request) -> SessionCodec:
    return request.app.state.sessions  # type: ignore[no-any-return]


async def current_viewer(request: Request) -> Viewer:
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        raise SignInRequired()
    try:
        session = codec(request).open(cookie)
    except SessionExpired:
        raise SignInRequired("Your session has expired. Sign in again.") from None
    except SessionInvalid:
        raise SignInRequired("Your session is not valid here any more. Sign in again.") from None
    identity: Identity = request.app.state.services.identity
    principal = identity.cached(session.token)
    if principal is None:
        context = {"method": request.method, "path": request.url.path,
                   "client": request.client.host if request.client else "-"}
        try:
            principal = await run_in_threadpool(identity.authenticate, session.token, context=context)
        except errors.Unauthorized:
            raise SignInRequired("Your token is no longer accepted (revoked, expired, or its user disabled). "
                                 "Sign in with a valid token.") from None
    request.state.actor_name = principal.name  # refusals past this point are audited with the name
    return Viewer(principal, principal.actor(), session.csrf)


SignedIn = Annotated[Viewer, Depends(current_viewer)]


async def checked_form(request: Request, viewer: SignedIn) -> FormData:
    """The posted form, once its CSRF field matches the session's secret."""
    form = await request.form(max_files=0, max_fields=50)
    token = form.get("csrf_token")
    if not same_secret(token if isinstance(token, str) else None, viewer.csrf):
        raise FormRefused()
    return form


CheckedForm = Annotated[FormData, Depends(checked_form)]


def text_field(form: FormData, name: str, *, required: bool = True, limit: int = 10_000) -> str | None:
    """A form field as text, refused with its name when missing or too long."""
    value = form.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise errors.InvalidInput("this field is required", field=name)
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise errors.InvalidInput(f"must be text of at most {limit} characters", field=name)
    return value.strip()


def render(request: Request, template: str, *, status: int = 200, viewer: Viewer | None = None,
           **context: Any) -> HTMLResponse:
    page = _templates.get_template(template).render(
        request=request, viewer=viewer, version=__version__, path=request.url.path, **context)
    return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)


def sign_in_url(request: Request) -> str:
    """The sign-in form, set to come back to this page (with its query) afterwards."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/login?next=" + quote(here, safe="/")
