"""Dashboard widgets as operators use them: the alert list filtered and acknowledged, the chart menu's CSV
and PNG of what is shown, stat and gauge titles whole in a narrow card."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert, select

from tests.workbench.ui.conftest import Plant, shot
from workbench.db.tables import alerts, dashboards, users

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
ZONE = "America/Chicago"
TITLE = "Boiler temperature at the outlet of the heat exchanger"


def widgets_dashboard(plant: Plant) -> tuple[str, dict[str, str], dict[str, str]]:
    """A dashboard with an alert list (boiler), a line chart, and a narrow stat and gauge with long titles;
    three boiler alerts (critical and warning open, info resolved). Returns ids and the alerts' messages."""
    tag = uuid.uuid4().hex[:6]
    ids = {kind: f"{kind[:2]}{tag}" for kind in ("alerts", "line", "stat", "gauge")}
    bound = {"device_id": plant.boiler, "keys": ["temperature"], "aggregation": "avg", "window": ""}
    widgets = [
        {"id": ids["alerts"], "type": "alerts", "title": "Boiler alerts", "device_id": plant.boiler},
        {"id": ids["line"], "type": "line", "title": "Boiler trend", **bound},
        {"id": ids["stat"], "type": "stat", "title": TITLE, **bound},
        {"id": ids["gauge"], "type": "gauge", "title": TITLE, **bound},
    ]
    items = [
        {"id": ids["alerts"], "x": 0, "y": 0, "w": 6, "h": 9},
        {"id": ids["line"], "x": 6, "y": 0, "w": 6, "h": 9},
        {"id": ids["stat"], "x": 0, "y": 9, "w": 2, "h": 5},
        {"id": ids["gauge"], "x": 2, "y": 9, "w": 2, "h": 5},
    ]
    messages = {severity: f"Boiler {severity} {tag}" for severity in ("critical", "warning", "info")}
    with plant.platform.engine.begin() as conn:
        dashboard_id = conn.execute(
            insert(dashboards)
            .values(
                name=f"Widgets {tag}",
                widgets=widgets,
                layout={"columns": 12, "row_height": 30, "items": items},
                is_public=True,
            )
            .returning(dashboards.c.id)
        ).scalar_one()
        for severity, message in messages.items():
            conn.execute(
                insert(alerts).values(
                    device_id=uuid.UUID(plant.boiler),
                    severity=severity,
                    message=message,
                    key="temperature",
                    value=81.0,
                    status="resolved" if severity == "info" else "active",
                    triggered_at=datetime.now(UTC),
                )
            )
    return str(dashboard_id), ids, messages


def test_alert_list_filters_and_acknowledges(plant: Plant, login: Callable[..., Page]) -> None:
    dashboard_id, ids, messages = widgets_dashboard(plant)
    page = login("operator")
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    card = page.locator(f"#widget-{ids['alerts']}")
    listing = card.locator(f"#w-{ids['alerts']}-alerts")
    expect(listing).to_contain_text(messages["critical"])
    expect(listing).to_contain_text(messages["warning"])
    expect(listing).not_to_contain_text(messages["info"])  # resolved: not open
    severity, status = (
        card.locator("select[data-alert-filter=severity]"),
        card.locator("select[data-alert-filter=status]"),
    )
    severity.select_option("critical")
    expect(listing).to_contain_text(messages["critical"])
    expect(listing).not_to_contain_text(messages["warning"])
    severity.select_option("")
    status.select_option("resolved")
    expect(listing).to_contain_text(messages["info"])
    expect(listing).not_to_contain_text(messages["critical"])
    status.select_option("open")

    # Acknowledge from the widget: the alert service stores who did it, and every list follows the event.
    line = listing.locator("li").filter(has_text=messages["critical"])
    line.get_by_role("button", name="Ack").click()
    expect(page.locator("#wal-ack-done")).to_contain_text(messages["critical"])
    expect(line).to_contain_text("acknowledged")
    expect(line.get_by_role("button", name="Ack")).to_have_count(0)
    with plant.platform.engine.connect() as conn:
        row = conn.execute(
            select(alerts.c.status, users.c.email)
            .select_from(alerts.join(users, users.c.id == alerts.c.acknowledged_by))
            .where(alerts.c.message == messages["critical"])
        ).one()
    assert tuple(row) == ("acknowledged", plant.users["operator"][0])
    status.select_option("active")
    expect(listing).not_to_contain_text(messages["critical"])
    expect(listing).to_contain_text(messages["warning"])
    shot(page, "dashboard-alert-list")

    # A viewer sees the list and its filters, never an Ack button.
    viewer = login("viewer")
    viewer.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    viewer_list = viewer.locator(f"#w-{ids['alerts']}-alerts")
    expect(viewer_list).to_contain_text(messages["warning"])
    expect(viewer_list.get_by_role("button", name="Ack")).to_have_count(0)


def test_chart_menu_exports_what_is_shown_and_titles_are_whole(
    plant: Plant, login: Callable[..., Page]
) -> None:
    dashboard_id, ids, _ = widgets_dashboard(plant)
    page = login("viewer", timezone_id=ZONE)
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}?range=15m")
    graph = f"w-{ids['line']}-g0"
    expect(page.locator(f"#{graph} .main-svg").first).to_be_visible()
    shown = page.evaluate(
        f"(() => {{ const t = document.querySelector('#{graph} .js-plotly-plot').data[0];"
        " return {x: t.x, y: t.y, name: t.name}; })()"
    )
    assert shown["x"]
    page.locator(f"#w-{ids['line']}-menu button").first.click()
    with page.expect_download() as download:
        page.locator(f"#w-{ids['line']}-csv").click()
    text = open(download.value.path(), encoding="utf-8").read()  # noqa: SIM115 (read once)
    assert download.value.suggested_filename == "Boiler_trend.csv"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [f"time ({ZONE})", "series", "value"]
    assert [r[0] for r in rows[1:]] == shown["x"]  # the displayed points of the displayed range
    assert {r[1] for r in rows[1:]} == {shown["name"]} == {"temperature (°C)"}
    assert [float(r[2]) for r in rows[1:]] == pytest.approx(shown["y"])
    page.locator(f"#w-{ids['line']}-menu button").first.click()
    with page.expect_download() as picture:
        page.locator(f"#w-{ids['line']}-png").click()
    assert picture.value.suggested_filename == "Boiler_trend.png"
    assert open(picture.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"  # noqa: SIM115

    # In a card two columns wide, the stat and gauge titles wrap: every word shows, nothing is cut.
    for kind in ("stat", "gauge"):
        title = page.locator(f"#w-{ids[kind]}-{kind}-title")
        expect(title).to_have_text("temperature (°C)")
        header = page.locator(f"#widget-{ids[kind]} .wb-widget-title")
        expect(header).to_have_text(TITLE)
        for locator in (title, header):
            fits = locator.evaluate(
                "el => el.scrollWidth <= el.clientWidth + 1 && el.scrollHeight <= el.clientHeight + 1"
            )
            assert fits, f"{kind} title clipped"
        card = page.locator(f"#widget-{ids[kind]}").bounding_box()
        box = header.bounding_box()
        assert (
            card
            and box
            and box["x"] >= card["x"]
            and box["x"] + box["width"] <= card["x"] + card["width"] + 1
        )
    shot(page, "dashboard-widgets")
