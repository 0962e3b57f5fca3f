"""The UI's Content-Security-Policy holds in real Chromium: pages render with no violation reported."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import requests
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.workbench.ui.conftest import Plant
from tests.workbench.ui.test_pages import live_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

# Recorded by the page itself: every violation the browser reports, blocked or not.
WATCH = """
window.cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.cspViolations.push(
    e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));
"""


def watch(page: Page) -> list[str]:
    """Collect CSP complaints from the console and the page's violation events."""
    seen: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen.append(message.text)

    page.on("console", console)
    page.context.add_init_script(WATCH)
    return seen


def violations(page: Page, seen: list[str]) -> list[str]:
    """Everything reported so far on ``page``."""
    return [*seen, *page.evaluate("window.cspViolations || []")]


def test_every_ui_page_sends_the_policy(plant: Plant) -> None:
    for path in ("/login", "/ui/"):
        header = requests.get(f"{plant.base}{path}", timeout=10).headers.get("Content-Security-Policy", "")
        assert "script-src 'self' 'sha256-" in header, path
        scripts = header.split("script-src")[1].split(";")[0]
        assert "'unsafe-eval'" not in scripts and "'unsafe-inline'" not in scripts
        assert "frame-ancestors 'self'" in header and "object-src 'none'" in header


def test_pages_render_under_the_policy_without_violations(
    plant: Plant, browser: Browser, login: Callable[[str], Page]
) -> None:
    context = browser.new_context()
    anonymous = context.new_page()
    seen = watch(anonymous)
    context.add_init_script("localStorage.setItem('wb-theme', JSON.stringify('dark'))")
    anonymous.goto(f"{plant.base}/login")
    expect(anonymous.locator("#login")).to_be_visible()
    expect(anonymous.locator("html")).to_have_attribute("data-bs-theme", "dark")  # the inline script ran
    assert violations(anonymous, seen) == []
    context.close()

    dashboard_id, ids = live_dashboard(plant)
    page = login("engineer")
    seen = watch(page)
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=30_000)
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    expect(page.locator(f"#w-{ids['gauge']}-gauge .main-svg").first).to_be_visible(timeout=30_000)
    page.wait_for_function("() => window.wbLive && window.wbLive.state.subscribed >= 1", timeout=10_000)
    page.goto(f"{plant.base}/ui/rules")
    expect(page.locator("#rules-grid")).to_be_visible()
    assert re.search(r"/ui/rules", page.url)
    assert violations(page, seen) == []
