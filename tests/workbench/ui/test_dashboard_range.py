"""A dashboard's time range: presets, from/to, zoom by drag, in the URL; per-widget windows; the builder."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from tests.workbench.ui.conftest import Plant, shot
from tests.workbench.ui.test_pages import choose
from workbench.db.tables import dashboards

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
ZONE = "Asia/Kolkata"
XS = "(id => document.querySelector('#' + id + ' .js-plotly-plot').data[0].x)"


def range_dashboard(plant: Plant) -> tuple[str, str, str]:
    """A line chart following the dashboard's range and one with its own 15-minute window."""
    follow, own = f"f{uuid.uuid4().hex[:6]}", f"o{uuid.uuid4().hex[:6]}"
    bound = {"device_id": plant.pump, "keys": ["temperature"], "aggregation": "avg"}
    widgets = [
        {"id": follow, "type": "line", "title": "Follows", "window": "", **bound},
        {"id": own, "type": "line", "title": "Own window", "window": "15m", **bound},
    ]
    layout = {
        "columns": 12,
        "row_height": 30,
        "items": [
            {"id": follow, "x": 0, "y": 0, "w": 6, "h": 8},
            {"id": own, "x": 6, "y": 0, "w": 6, "h": 8},
        ],
    }
    with plant.platform.engine.begin() as conn:
        dashboard_id = conn.execute(
            insert(dashboards)
            .values(name=f"Range {uuid.uuid4().hex[:6]}", widgets=widgets, layout=layout, is_public=True)
            .returning(dashboards.c.id)
        ).scalar_one()
    return str(dashboard_id), f"w-{follow}-g0", f"w-{own}-g0"


def query(page: Page) -> dict[str, list[str]]:
    """The page URL's query."""
    return parse_qs(urlparse(page.url).query)


def test_range_presets_from_to_and_zoom_live_in_the_url(plant: Plant, login: Callable[..., Page]) -> None:
    dashboard_id, follow, own = range_dashboard(plant)
    page = login("operator", timezone_id=ZONE)
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    expect(page.locator("#dashboard-range")).to_have_text("Last hour")
    expect(page.locator("#range-live")).to_have_text("live")
    expect(page.locator(f"#{follow} .main-svg").first).to_be_visible()
    # Each series is named with its key and unit.
    assert (
        page.evaluate(f"document.querySelector('#{follow} .js-plotly-plot').data[0].name")
        == "temperature (°C)"
    )
    page.locator("#range-preset").get_by_text("6h").click()
    expect(page.locator("#dashboard-range")).to_have_text("Last 6 hours")
    assert query(page) == {"range": ["6h"]}
    page.reload()  # a link to the view opens the same view
    expect(page.locator("#dashboard-range")).to_have_text("Last 6 hours")

    # A fixed range, typed in the user's zone: the chart holds only points inside it, and it stays put.
    zone = ZoneInfo(ZONE)
    now = datetime.now(UTC)
    start, end = (
        (now - timedelta(minutes=40)).astimezone(zone),
        (now - timedelta(minutes=20)).astimezone(zone),
    )
    page.fill("#range-from", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("#range-to", end.strftime("%Y-%m-%dT%H:%M"))
    page.click("#range-apply")
    expect(page.locator("#range-live")).to_have_text("fixed range")
    assert query(page)["from"] == [start.strftime("%Y-%m-%dT%H:%M")]
    page.reload()
    expect(page.locator("#range-from")).to_have_value(start.strftime("%Y-%m-%dT%H:%M"))
    expect(page.locator(f"#{follow} .main-svg").first).to_be_visible()
    xs = page.evaluate(f"{XS}('{follow}')")
    assert xs and start.strftime("%Y-%m-%d %H:%M") <= min(xs) and max(xs) <= end.strftime("%Y-%m-%d %H:%M:59")
    # The widget with its own window keeps its last 15 minutes (its override).
    own_xs = page.evaluate(f"{XS}('{own}')")
    assert own_xs and min(own_xs) >= (now - timedelta(minutes=16)).astimezone(zone).strftime("%Y-%m-%d %H:%M")
    shot(page, "dashboard-range")

    # Zoom by dragging across a chart: the dragged span becomes the dashboard's range.
    page.locator("#range-preset").get_by_text("1h").click()
    expect(page.locator("#range-live")).to_have_text("live")
    plot = page.locator(f"#{follow} .nsewdrag").first
    expect(plot).to_be_visible()
    box = plot.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.7, y, steps=5)
    page.mouse.up()
    expect(page.locator("#range-live")).to_have_text("fixed range")
    expect(page).to_have_url(re.compile(r"from=.*&to="))


def test_builder_offers_one_key_for_gauges_and_clears_after_adding(
    plant: Plant, login: Callable[..., Page]
) -> None:
    page = login("operator")
    page.goto(f"{plant.base}/ui/dashboards/new")
    choose(page, "#widget-type", "Gauge")
    expect(page.locator("#widget-keys-hint")).to_have_text("A gauge or a stat shows one key.")
    choose(page, "#widget-device", "Pump P-101")
    choose(page, "#widget-keys", "pressure")
    page.fill("#widget-title", "Pressure")
    page.click("#widget-add")
    expect(page.locator("#builder-canvas .react-grid-item")).to_have_count(1)
    expect(page.locator("#builder-canvas")).to_contain_text("pressure (bar)")
    expect(page.locator("#widget-keys")).not_to_contain_text("pressure")
    expect(page.locator("#widget-title")).to_have_value("")
