"""Errors on dashboard pages become pages: the right status, a sentence, a way on.

The API's handlers answer JSON; these wrap them and answer HTML for every path outside
``/api/`` (the dashboard's own, and unknown paths a browser may type). No traceback, token or
database URL ever reaches a page: messages come from our own exceptions, the rest is logged.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from threadline.api import errors as api_errors
from threadline.dashboard import routes_session, web
from threadline.dashboard.session import COOKIE
from threadline.domain import errors

log = logging.getLogger("threadline.dashboard")

Handler = Callable[[Request, Any], Response | Awaitable[Response]]

_TITLES = {400: "Bad request", 401: "Sign-in needed", 403: "Not allowed", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 413: "Too large", 500: "Something went wrong",
           502: "A runtime failed", 503: "Not configured"}


def is_page(request: Request) -> bool:
    return not request.url.path.startswith("/api/")


def install(app: FastAPI) -> None:
    """Put the HTML answers in front of the API's JSON handlers (installed before this)."""
    for kind, page in ((errors.ThreadlineError, _domain_error), (RequestValidationError, _invalid_request),
                       (HTTPException, _http_error), (Exception, _unexpected)):
        app.add_exception_handler(kind, _for_pages(page, app.exception_handlers[kind]))
    app.add_exception_handler(web.SignInRequired, _sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(web.FormRefused, _form_refused)  # type: ignore[arg-type]


def _for_pages(page: Handler, api: Handler) -> Handler:
    async def handle(request: Request, exc: Exception) -> Response:
        chosen = page if is_page(request) else api
        answer = chosen(request, exc)
        return await answer if isinstance(answer, Awaitable) else answer  # type: ignore[return-value]

    return handle


def error_page(request: Request, status: int, message: str) -> Response:
    return web.render(request, "error.html", status=status, title=_TITLES.get(status, "Error"), message=message,
                      status_code=status)


async def _domain_error(request: Request, exc: errors.ThreadlineError) -> Response:
    status = api_errors.status_of(exc)
    if status >= 500:
        log.error("page failed: %s", exc)
    if status == 403:
        await run_in_threadpool(api_errors.audit_refusal, request, exc)
    return error_page(request, status, str(exc))


def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    problems = [" ".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path")) + ": "
                + str(item.get("msg", "invalid")) for item in exc.errors()[:5]]
    return error_page(request, 400, "This address has invalid parameters: " + "; ".join(problems))


def _http_error(request: Request, exc: HTTPException) -> Response:
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"There is no page at {request.url.path}."
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}."
    return error_page(request, exc.status_code, message)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s", request.url.path, exc_info=exc)
    return error_page(request, 500, "An internal error stopped this page; the server log has the details.")


def _sign_in(request: Request, exc: web.SignInRequired) -> Response:
    """No session: a plain visit goes to the sign-in form; a dead session is told why (401)."""
    if exc.reason is None and request.method == "GET":
        return RedirectResponse(web.sign_in_url(request), status_code=303)
    response = routes_session.login_page(request, status=401, message=exc.reason or "Sign in first.",
                                         next_path=request.url.path if request.method == "GET" else "/")
    response.delete_cookie(COOKIE, path="/")
    return response


def _form_refused(request: Request, _exc: web.FormRefused) -> Response:
    return error_page(request, 403, "This form was refused: its security token is missing or belongs to another "
                                    "session. Reload the page and submit it again.")
