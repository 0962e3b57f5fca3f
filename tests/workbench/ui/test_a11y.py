"""Accessibility (axe-core on every page, landmarks, titles, skip link), dark mode, phone layouts."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import insert

from tests.workbench.ui.conftest import Plant, shot
from tests.workbench.ui.test_pages import live_dashboard
from workbench.db.tables import alerts

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations
  .filter(v => v.impact === 'serious' || v.impact === 'critical')
  .map(v => ({id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})))"""


@pytest.fixture(scope="module")
def axe() -> Path:
    """axe-core from npm (tests/workbench/ui/package-lock.json): CI installs it, elsewhere a skip says how."""
    if not AXE.is_file():
        if os.environ.get("CI"):
            raise AssertionError(f"{AXE} missing: CI runs npm ci --prefix tests/workbench/ui")
        pytest.skip("axe-core is not installed: npm ci --prefix tests/workbench/ui")
    return AXE


def scan(page: Page, axe: Path) -> list[dict[str, object]]:
    """The serious and critical axe-core violations of the page as shown."""
    # Served as a script of the page's own origin: the UI's Content-Security-Policy refuses inline scripts.
    origin = re.match(r"https?://[^/]+", page.url)
    assert origin is not None
    url = f"{origin.group(0)}/__tests__/axe.min.js"
    page.route(url, lambda route: route.fulfill(path=str(axe), content_type="text/javascript"))
    page.add_script_tag(url=url)
    found: list[dict[str, object]] = page.evaluate(SERIOUS)
    return found


def open_alert(plant: Plant) -> str:
    """An open alert on the pump; returns its message."""
    message = f"Phone check {uuid.uuid4().hex[:6]}"
    with plant.platform.engine.begin() as conn:
        conn.execute(
            insert(alerts).values(
                device_id=uuid.UUID(plant.pump),
                severity="warning",
                message=message,
                key="temperature",
                value=45.0,
                status="active",
                triggered_at=datetime.now(UTC),
            )
        )
    return message


def test_every_page_passes_axe_with_landmarks_titles_and_a_skip_link(
    plant: Plant, login: Callable[..., Page], browser: Browser, axe: Path
) -> None:
    dashboard_id, _ = live_dashboard(plant)
    open_alert(plant)
    pages = {
        "/ui/": ("Overview", "#device-grid"),
        f"/ui/device/{plant.pump}": ("Device", "#latest-table"),
        "/ui/dashboards": ("Dashboards", "#dashboard-list"),
        f"/ui/dashboards/{dashboard_id}": ("Dashboards", "#dashboard-grid .main-svg"),
        "/ui/dashboards/new": ("Dashboards", "#widget-add"),
        "/ui/alerts": ("Alerts", "#alerts-grid .ag-row"),
        "/ui/rules": ("Rules", "#rules-grid"),
        "/ui/reports": ("Reports", "#reports-grid"),
        "/ui/devices": ("Devices", "#dev-table"),
    }
    problems: dict[str, object] = {}
    for dark in (False, True):
        page = login("admin")
        if dark:
            page.locator("#theme-dark").check()
            expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
        for path, (title, ready) in pages.items():
            page.goto(f"{plant.base}{path}")
            expect(page.locator(ready).first).to_be_visible()
            expect(page).to_have_title(f"{title} · IIoT Workbench")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.locator("main#main")).to_have_count(1)
            found = scan(page, axe)
            if found:
                problems[f"{path} ({'dark' if dark else 'light'})"] = found
        # The first Tab reaches the skip link, which moves focus to the main content.
        page.goto(f"{plant.base}/ui/alerts")
        expect(page.locator("#alerts-grid")).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.locator("#skip-link")).to_be_focused()
        if dark:
            # Grids and inputs follow the theme: a dark row, a dark dropdown.
            grid_bg = page.evaluate(
                "getComputedStyle(document.querySelector('#alerts-grid .ag-row')).backgroundColor"
            )
            drop_bg = page.evaluate(
                "getComputedStyle(document.querySelector('#alert-status-filter .dash-dropdown')"
                " || document.querySelector('#alert-status-filter')).backgroundColor"
            )
            for colour in (grid_bg, drop_bg):
                channels = [int(c) for c in re.findall(r"\d+", colour)[:3]]
                assert sum(channels) < 3 * 100, f"not dark: {colour}"
            shot(page, "alerts-dark")
    anonymous = browser.new_page()
    anonymous.goto(f"{plant.base}/login")
    found = scan(anonymous, axe)
    if found:
        problems["/login"] = found
    anonymous.close()
    summary = {
        where: sorted({f"{v['id']}: {', '.join(v['nodes'])}" for v in found})  # type: ignore[index]
        for where, found in problems.items()
    }
    assert not problems, "\n".join(f"{w}: {v}" for w, v in summary.items())


def test_builder_drag_handles_are_focusable(plant: Plant, login: Callable[..., Page]) -> None:
    from tests.workbench.ui.test_pages import choose

    page = login("operator")
    page.goto(f"{plant.base}/ui/dashboards/new")
    choose(page, "#widget-type", "Device status grid")
    page.click("#widget-add")
    handle = page.locator("#builder-canvas .wb-drag-handle").first
    handle.focus()
    expect(handle).to_be_focused()
    expect(handle).to_have_attribute("aria-label", re.compile("Move"))


def test_phone_alerts_acknowledge_device_page_and_menu(plant: Plant, login: Callable[..., Page]) -> None:
    message = open_alert(plant)
    page = login("operator", viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    # The menu opens from its toggler and closes once a link was followed.
    page.click("#nav-toggle")
    expect(page.locator("#nav-collapse")).to_have_class(re.compile(r"\bshow\b"))
    page.locator("#nav-alerts").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    expect(page.locator("#nav-collapse")).not_to_have_class(re.compile(r"\bshow\b"))
    # The alert list with acknowledge.
    page.get_by_text(message).click()
    page.fill("#alert-comment", "seen on the phone")
    page.locator("#alert-ack").scroll_into_view_if_needed()
    page.click("#alert-ack")
    expect(page.locator("#alert-done")).to_contain_text("acknowledged")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "alerts-phone")
    # The device page without sideways scrolling.
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#history-graph .main-svg").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "device-phone")
