"""The dashboard in a real browser (Debian's Chromium through Playwright), over what
``threadline quickstart`` builds: every page renders without a console error, charts draw,
a reviewer resolves a case by clicking, and refusals are pages, not stack traces.

Screenshots of every page visited are kept under the test's temporary folder (its path is
printed; set THREADLINE_TEST_SCREENSHOTS to keep them elsewhere).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from browser_support import Watched, browser_page, chromium_or_skip
from support import free_port, wait_for

pytestmark = pytest.mark.integration

MAX_PAGES = 40
PER_KIND = 3  # e.g. three case pages, three audit pages: each kind of page, not every case


def kind_of(url: str) -> str:
    """A page's kind: its path with ids and names past the section left out, and whether it has a query."""
    parts = urlparse(url)
    section = parts.path.strip("/").split("/")
    return f"{section[0]}/{len(section)}{'?' if parts.query else ''}"


@dataclass
class Demo:
    url: str
    home: Path
    shots: Path

    def token(self, person: str) -> str:
        path = self.home / ("admin.token" if person == "admin" else f"team/{person}.token")
        return path.read_text().strip()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    chromium_or_skip()
    base = tmp_path_factory.mktemp("browser")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADLINE_")}
    log = base / "quickstart.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "threadline", "quickstart", "--home", str(base / "home"),
                                    "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: process.poll() is not None or "Ctrl-C" in log.read_text(), timeout=240,
                 what="the quickstart's summary")
        assert process.poll() is None, log.read_text()
        shots = Path(os.environ.get("THREADLINE_TEST_SCREENSHOTS") or base / "screenshots")
        print(f"screenshots in {shots}")
        yield Demo(f"http://127.0.0.1:{port}", base / "home", shots)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()


def sign_in(watched: Watched, demo: Demo, person: str) -> None:
    watched.visit(demo.url + "/login", f"login-{person}")
    watched.page.get_by_label("API token").fill(demo.token(person))  # type: ignore[attr-defined]
    watched.page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    watched.page.wait_for_url(demo.url + "/")  # type: ignore[attr-defined]


def test_every_page_renders_without_console_errors_and_charts_draw(demo: Demo) -> None:
    with browser_page(demo.shots / "admin") as watched:
        sign_in(watched, demo, "admin")
        queue, seen, kinds, charted = [demo.url + "/"], set(), Counter[str](), 0
        while queue and len(seen) < MAX_PAGES:
            url = queue.pop(0)
            if url in seen or kinds[kind_of(url)] >= PER_KIND:
                continue
            seen.add(url)
            kinds[kind_of(url)] += 1
            path = urlparse(url).path
            status = watched.visit(url, path.strip("/").replace("/", "_") or "overview")
            assert status == 200, f"{url} answered {status}"
            total, drawn = watched.charts()
            assert drawn == total, f"{url}: {drawn} of {total} charts drawn"
            charted += drawn
            queue += [link for link in watched.links(demo.url) if link not in seen]
        watched.visit(demo.url + "/models/breast-cancer", "model-approved")
        assert watched.page.locator("ul.pending").count() == 0  # type: ignore[attr-defined]  # the round is decided
        visited = {urlparse(u).path.split("/")[1] for u in seen}
        assert {"", "models", "deployments", "review", "audit"} <= visited, visited
        assert charted >= 4, "the deployment page's traffic, latency and drift charts"
        assert watched.errors == []


def test_a_reviewer_resolves_a_case_from_the_browser(demo: Demo) -> None:
    with browser_page(demo.shots / "reviewer") as watched:
        sign_in(watched, demo, "rita")
        watched.visit(demo.url + "/review", "queue")
        page = watched.page
        page.locator("table a[href^='/review/']").first.click()  # type: ignore[attr-defined]
        case_url = page.url  # type: ignore[attr-defined]
        page.get_by_role("button", name="Claim").click()  # type: ignore[attr-defined]
        page.get_by_role("radio", name="Override").check()  # type: ignore[attr-defined]
        label = page.get_by_label("Correct label")  # type: ignore[attr-defined]
        label.select_option(index=1)
        page.get_by_label("Comment").fill("checked against the pathology report")  # type: ignore[attr-defined]
        page.get_by_role("button", name="Resolve").click()  # type: ignore[attr-defined]
        page.wait_for_url(case_url)  # type: ignore[attr-defined]
        watched.screenshot("resolved")
        assert "checked against the pathology report" in page.content()  # type: ignore[attr-defined]
        assert watched.errors == []
    bundle_id = case_url.rsplit("/", 1)[1]
    task = httpx.get(f"{demo.url}/api/v1/review", params={"status": "resolved"},
                     headers={"Authorization": f"Bearer {demo.token('rita')}"}).json()
    resolved = [t for t in task["items"] if t["bundle_id"] == bundle_id]
    assert resolved and resolved[0]["decision"] == "override" and resolved[0]["resolved_by"] == "rita"


def test_refusals_are_clear_pages(demo: Demo) -> None:
    with browser_page(demo.shots / "refusals") as watched:
        page = watched.page
        watched.visit(demo.url + "/login", "wrong-token")
        page.get_by_label("API token").fill("tl_wrong")  # type: ignore[attr-defined]
        page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
        assert "That token was not accepted" in page.content()  # type: ignore[attr-defined]
        sign_in(watched, demo, "rita")
        assert watched.visit(demo.url + "/models/no-such-model", "missing-model") == 404
        assert "no-such-model" in page.content()  # type: ignore[attr-defined]
        # A reviewer submits an approver's form (built in the page, with her own CSRF secret).
        watched.visit(demo.url + "/models/breast-cancer", "model-as-reviewer")
        assert page.locator("form.decide").count() == 0  # type: ignore[attr-defined]
        with page.expect_navigation():  # type: ignore[attr-defined]
            page.evaluate("""() => {
                const form = document.createElement('form');
                form.method = 'post';
                form.action = '/models/breast-cancer/versions/1/approvals';
                const fields = {csrf_token: document.querySelector('input[name=csrf_token]').value,
                                environment: 'production', decision: 'approve', otp: '000000'};
                for (const [name, value] of Object.entries(fields)) {
                    const input = document.createElement('input');
                    input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
                }
                document.body.appendChild(form);
                form.submit();
            }""")
        watched.screenshot("reviewer-approving")
        text = page.content()  # type: ignore[attr-defined]
        assert "Not allowed" in text and "decide-approval" in text and "Traceback" not in text
        console = [e for e in watched.errors if "401" not in e and "403" not in e and "404" not in e]
        assert console == []  # the refused answers themselves are the only console lines
