"""The one table from domain errors to HTTP statuses, and the handlers that use it.

Every error body is ``{"error": "<message>"}``; messages come from our own exceptions and
never carry a traceback, a token or a database URL.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from threadline.api.responses import JSON
from threadline.domain import errors

log = logging.getLogger("threadline.api")

STATUS: tuple[tuple[type[errors.ThreadlineError], int], ...] = (
    (errors.PayloadTooLarge, 413),
    (errors.InvalidInput, 400),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.IntegrityError, 500),
    (errors.ConfigurationError, 503),
    (errors.RuntimeFailure, 502),
)


def status_of(error: errors.ThreadlineError) -> int:
    for cls, status in STATUS:
        if isinstance(error, cls):
            return status
    return 500


def _threadline_error(request: Request, exc: errors.ThreadlineError) -> JSON:
    """Runs in the thread pool (a plain function), so auditing a refusal may wait for the writer."""
    status = status_of(exc)
    if status >= 500:
        log.error("request failed: %s", exc)
    if status == 403:
        audit_refusal(request, exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSON({"error": str(exc)}, status_code=status, headers=headers)


def audit_refusal(request: Request, exc: errors.ThreadlineError) -> None:
    """Every refusal of an authenticated caller is an audit entry naming the rule it broke."""
    services = request.app.state.services
    actor = getattr(request.state, "actor_name", "anonymous")
    with services.store.writing() as tx:
        services.audit.record(tx, actor, "access.denied", request.url.path[:255],
                              {"method": request.method, "reason": str(exc)[:2000]})


def _validation_error(_request: Request, exc: RequestValidationError) -> JSON:
    problems = []
    for item in exc.errors()[:10]:
        where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg")))
    return JSON({"error": "invalid request: " + "; ".join(problems)}, status_code=400)


def _http_error(request: Request, exc: HTTPException) -> JSON:
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):
        message = f"no route for {request.method} {request.url.path}"
    return JSON({"error": message}, status_code=exc.status_code, headers=exc.headers)


def _unexpected(_request: Request, exc: Exception) -> JSON:
    # Handlers run in a worker thread where no exception is active: pass it explicitly.
    log.error("unexpected error", exc_info=exc)
    return JSON({"error": "internal error; the server log has the details"}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ThreadlineError, _threadline_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
