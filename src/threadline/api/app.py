"""The control-plane application: routes, error handling, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from threadline import __version__, dashboard
from threadline.api import (errors, limits, routes_artifacts, routes_audit, routes_gitops, routes_governance,
                            routes_capacity, routes_identity, routes_models, routes_monitoring, routes_review)
from threadline.api.auth import needs, permission_of
from threadline.api.responses import JSON
from threadline.bootstrap import Services
from threadline.domain.access import PERMISSIONS, Permission


def create_app(services: Services) -> FastAPI:
    # Closed by default: the schema and docs routes FastAPI would serve openly are replaced
    # by an authenticated copy of the schema.
    app = FastAPI(title="Threadline control plane", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None, lifespan=_lifespan,
                  description="Registry, governance, GitOps and audit API. Every route needs a bearer token.")
    app.state.services = services
    errors.install(app)
    routers = [module.router for module in _ROUTES] + [_meta]
    for router in routers:
        app.include_router(router)
    app.state.schema = lambda: _with_permissions(app.openapi(), routers)
    dashboard.install(app, services)

    app.add_middleware(limits.BodyLimit, max_bytes=services.settings.max_request_bytes,
                       exempt_prefixes=(routes_artifacts.router.prefix, routes_review.IMPORT_PATH))
    return app


_ROUTES = (routes_models, routes_artifacts, routes_audit, routes_identity, routes_governance, routes_gitops,
           routes_monitoring, routes_review, routes_capacity)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The embedded GitOps agent runs while the API does (its first pass waits for the port).

    Shutdown work happens here, in the graceful shutdown: uvicorn re-raises SIGTERM once it
    returns, so code after ``uvicorn.run`` never runs for a terminated server.
    """
    services: Services = app.state.services
    if services.gitops is not None:
        services.gitops.start()
    for loop in (services.monitor, services.capacity):
        if loop is not None:
            loop.start()
    yield
    for loop in (services.capacity, services.monitor):
        if loop is not None:
            await run_in_threadpool(loop.stop)
    if services.gitops is not None:
        await run_in_threadpool(services.gitops.stop, stop_workloads=services.gitops.stop_workloads_on_exit)
    with services.store.writing() as tx:
        services.audit.checkpoint(tx)
_meta = APIRouter(prefix="/api/v1", tags=["meta"])


@_meta.get("/openapi.json")
def openapi(request: Request, actor: needs(Permission.READ)) -> JSON:
    return JSON(request.app.state.schema())


def _with_permissions(schema: dict[str, Any], routers: list[APIRouter]) -> dict[str, Any]:
    """The OpenAPI schema with each operation's permission and the roles that hold it
    (``x-permission``, ``x-roles``): clients and the route-walking test read them there."""
    for route in (r for router in routers for r in router.routes):
        if not isinstance(route, APIRoute):
            continue
        permission = next(filter(None, (permission_of(d.call) for d in route.dependant.dependencies)), None)
        for method in route.methods:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is not None and permission is not None:
                operation["x-permission"] = permission.value
                operation["x-roles"] = sorted(role.value for role in PERMISSIONS[permission])
    return schema
