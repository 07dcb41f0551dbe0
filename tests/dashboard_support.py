"""The dashboard in process: real services on a temporary home, driven with Starlette's client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from starlette.testclient import TestClient

from threadline import bootstrap
from threadline.api.app import create_app
from threadline.domain import access
from threadline.settings import Settings

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF field of the first form on ``page``."""
    found = _CSRF.search(page)
    assert found, "the page has no form with a csrf_token"
    return found.group(1)


@dataclass
class Dashboard:
    services: bootstrap.Services
    admin_token: str

    def client(self) -> TestClient:
        return TestClient(create_app(self.services), base_url="http://127.0.0.1")

    def token_for(self, name: str, *roles: access.Role, teams: tuple[str, ...] = ()) -> str:
        """A new user holding ``roles`` and a token of theirs."""
        admin = access.system("test")
        self.services.identity.create_user(admin, name, roles, teams=teams)
        return self.services.identity.issue_token(admin, name, "dashboard").secret

    def signed_in(self, token: str | None = None) -> TestClient:
        """A client with a session cookie for ``token`` (the admin's by default)."""
        client = self.client()
        form = client.get("/login")
        answer = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": token or self.admin_token,
                                             "next": "/"}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return client


def dashboard(home: Path, **settings: object) -> Dashboard:
    services = bootstrap.build(Settings(home=home, monitor_interval=0, capacity_interval=0, **settings))
    bootstrap.write_admin_token(services)
    return Dashboard(services, (home / "admin.token").read_text().strip())
