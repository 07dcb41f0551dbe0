"""The web dashboard at ``/`` of the control plane: server-rendered pages over the services.

Same process, same services, same role checks as the API; signed in with an API token kept in
an encrypted, HttpOnly, SameSite=Strict session cookie; forms carry a CSRF secret; charts come
from uPlot, vendored under ``static/vendor`` so the dashboard works offline.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from threadline.bootstrap import Services
from threadline.dashboard import (failures, routes_audit, routes_deployments, routes_models, routes_overview,
                                  routes_review, routes_session)
from threadline.dashboard.session import SessionCodec

PAGES = (routes_session, routes_overview, routes_models, routes_deployments, routes_review, routes_audit)


def install(app: FastAPI, services: Services) -> None:
    """Add the pages to the control-plane app (after the API's routes and error handlers)."""
    settings = services.settings
    app.state.sessions = SessionCodec.load_or_create(settings.resolved_session_key_path,
                                                     settings.session_lifetime_seconds)
    for module in PAGES:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(packages=[("threadline.dashboard", "static")]), name="static")
    failures.install(app)
