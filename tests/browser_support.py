"""Playwright driving Debian's Chromium: console errors collected, screenshots kept.

Chromium comes from Debian (`apt-get install chromium`, which `.ci/run` does); Playwright's
own browser download is never used, so the tests work offline.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

CHROMIUM = os.environ.get("THREADLINE_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def chromium_or_skip() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)")
    return CHROMIUM


@dataclass
class Watched:
    """A browser page whose console errors and uncaught exceptions are kept, per URL."""

    page: object
    shots: Path
    errors: list[str] = field(default_factory=list)

    def visit(self, url: str, name: str) -> int:
        response = self.page.goto(url)  # type: ignore[attr-defined]
        self.page.wait_for_load_state("load")  # type: ignore[attr-defined]
        self.screenshot(name)
        return int(response.status) if response else 0

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{len(list(self.shots.iterdir())):02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)  # type: ignore[attr-defined]
        return path

    def charts(self) -> tuple[int, int]:
        """(charts on the page, charts drawn)."""
        total = self.page.locator("[data-chart]").count()  # type: ignore[attr-defined]
        drawn = self.page.locator("[data-chart][data-rendered='true'] canvas").count()  # type: ignore[attr-defined]
        return total, drawn

    def links(self, base: str) -> list[str]:
        """Same-site page links of the current page (no static files, no sign-out)."""
        hrefs = self.page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")  # type: ignore[attr-defined]
        found = []
        for href in hrefs:
            url = urljoin(self.page.url, href.split("#", 1)[0])  # type: ignore[attr-defined]
            if urlparse(url).netloc == urlparse(base).netloc and not urlparse(url).path.startswith("/static/"):
                found.append(url)
        return found


@contextmanager
def browser_page(shots: Path) -> Iterator[Watched]:
    from playwright.sync_api import sync_playwright

    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_or_skip(), headless=True,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            watched = Watched(page, shots)
            page.on("console", lambda m: watched.errors.append(f"{page.url}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: watched.errors.append(f"{page.url}: {e}"))
            yield watched
        finally:
            browser.close()
