"""The control-plane application: routes, error handling, limits."""

from __future__ import annotations

from fastapi import FastAPI

from threadline import __version__
from threadline.api import errors, limits, routes_artifacts, routes_audit, routes_models
from threadline.api.auth import Caller
from threadline.api.responses import JSON
from threadline.bootstrap import Services


def create_app(services: Services) -> FastAPI:
    # Closed by default: the schema and docs routes FastAPI would serve openly are replaced
    # by an authenticated copy of the schema.
    app = FastAPI(title="Threadline control plane", version=__version__, openapi_url=None, docs_url=None,
                  redoc_url=None, description="Registry and audit API. Every route needs a bearer token.")
    app.state.services = services
    errors.install(app)
    for module in (routes_models, routes_artifacts, routes_audit):
        app.include_router(module.router)

    @app.get("/api/v1/whoami", tags=["meta"])
    async def whoami(caller: Caller) -> JSON:
        """Who the token belongs to; the data plane uses it to check inference tokens."""
        return JSON({"user": caller.name, "roles": list(caller.user.roles)})

    @app.get("/api/v1/openapi.json", tags=["meta"])
    def openapi(caller: Caller) -> JSON:
        return JSON(app.openapi())

    app.add_middleware(limits.BodyLimit, max_bytes=services.settings.max_request_bytes,
                       exempt_prefix=routes_artifacts.router.prefix)
    return app
