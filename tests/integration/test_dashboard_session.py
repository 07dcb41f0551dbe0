"""Dashboard sign-in and session: cookie flags, CSRF, expiry, revocation, error pages."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dashboard_support import Dashboard, csrf_of, dashboard

from threadline.dashboard.session import COOKIE
from threadline.domain import access

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Dashboard:
    return dashboard(tmp_path_factory.mktemp("dashboard"))


def test_pages_send_a_visitor_without_session_to_sign_in(board: Dashboard) -> None:
    answer = board.client().get("/models?q=x", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/models%3Fq%3Dx"


def test_sign_in_sets_a_strict_httponly_session_and_returns_to_the_page(board: Dashboard) -> None:
    client = board.client()
    form = client.get("/login?next=/audit")
    assert form.status_code == 200 and 'name="next" value="/audit"' in form.text
    answer = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": board.admin_token,
                                         "next": "/audit"}, follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/audit"
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert board.admin_token not in cookie  # sealed, not readable
    page = client.get("/")
    assert page.status_code == 200 and "Sign out" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    with board.services.store.reading() as tx:
        actions = [e.action for e in tx.audit_entries(after=0, limit=1000)]
    assert "dashboard.signin" in actions


def test_a_wrong_token_is_refused_with_a_clear_page(board: Dashboard) -> None:
    client = board.client()
    form = client.get("/login")
    answer = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": "tl_not-a-real-token"},
                         follow_redirects=False)
    assert answer.status_code == 401
    assert "That token was not accepted" in answer.text and "Traceback" not in answer.text
    assert COOKIE not in client.cookies


def test_sign_in_without_its_csrf_secret_is_refused(board: Dashboard) -> None:
    client = board.client()
    client.get("/login")
    answer = client.post("/login", data={"csrf_token": "forged", "token": board.admin_token})
    assert answer.status_code == 403 and "security token" in answer.text
    assert COOKIE not in client.cookies


def test_a_forged_form_without_the_session_csrf_is_refused(board: Dashboard) -> None:
    client = board.signed_in()
    assert client.post("/logout", data={}).status_code == 403
    assert client.post("/logout", data={"csrf_token": "guess"}).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    out = client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


def test_an_expired_session_says_so(board: Dashboard) -> None:
    client = board.client()
    codec = client.app.state.sessions  # type: ignore[attr-defined]
    stale = codec.seal(board.admin_token, now=int(time.time()) - codec.lifetime_seconds - 60)
    client.cookies.set(COOKIE, stale)
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 401 and "session has expired" in answer.text
    assert 'name="token"' in answer.text  # the sign-in form, right there


def test_a_cookie_from_elsewhere_is_not_a_session(board: Dashboard, tmp_path: Path) -> None:
    other = dashboard(tmp_path / "other")
    foreign = other.signed_in().cookies[COOKIE]
    client = board.client()
    client.cookies.set(COOKIE, foreign)
    assert client.get("/", follow_redirects=False).status_code == 401


def test_a_revoked_token_ends_the_session_at_the_next_click(board: Dashboard) -> None:
    token = board.token_for("leaver", access.Role.DEVELOPER)
    client = board.signed_in(token)
    assert client.get("/").status_code == 200
    admin = access.system("test")
    for _, listed in board.services.identity.list_tokens(admin, "leaver"):
        board.services.identity.revoke_token(admin, listed.id)
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 401 and "no longer accepted" in answer.text


def test_next_never_leaves_the_site(board: Dashboard) -> None:
    client = board.client()
    form = client.get("/login")
    answer = client.post("/login", data={"csrf_token": csrf_of(form.text), "token": board.admin_token,
                                         "next": "//evil.example/"}, follow_redirects=False)
    assert answer.headers["location"] == "/"


def test_unknown_pages_are_html_and_unknown_api_routes_stay_json(board: Dashboard) -> None:
    client = board.signed_in()
    page = client.get("/no/such/page")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page" in page.text
    api = client.get("/api/v1/no-such-route")
    assert api.status_code == 404 and api.json()["error"].startswith("no route")


def test_static_assets_are_served_from_the_package(board: Dashboard) -> None:
    client = board.client()
    assert client.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200
    assert client.get("/static/../settings.py").status_code == 404
