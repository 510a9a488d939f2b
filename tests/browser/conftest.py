"""The console in a real browser: Playwright driving Debian's ``chromium`` (``make test``
installs it) against the test session's local stack. Screenshots of each screen land in
``tests/browser/screenshots/`` (git-ignored)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
WAIT_MS = 20_000  # a bound on every wait for the page; none is a timing assertion


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def console(request, clean, browser) -> Iterator[Callable[..., object]]:
    """Open the console signed in as a user (development sign-in); returns the page."""
    contexts = []

    def open_as(user: str, org: str | None = None, width: int = 1280, height: int = 800):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clean.url("query"))
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda err: page.errors.append(str(err)))
        page.on("dialog", lambda dialog: dialog.accept())
        page.goto(clean.console_url())
        page.fill("#dev-user", user)
        if org:
            page.fill("#dev-org", org)
        page.click("button:has-text('Sign in')")
        page.wait_for_selector("#nav:not([hidden])")
        return page

    yield open_as
    for number, context in enumerate(contexts):
        if getattr(request.node, "failed_call", False):  # what the page showed, to debug
            for page in context.pages:
                screenshot(page, f"failed-{request.node.name}-{number}")
                print("page text:", page.text_content("body"), "errors:", page.errors)
        context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
