"""Time in the browser: every instant in the user's zone, labelled; the evidence marker sits on its point."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from tests.workbench.ui.conftest import Plant, shot
from workbench.db.tables import alerts, telemetry

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

# Where the marker and the triggering point are drawn, in pixels, and what the chart says about them.
MARKER_AND_POINT = """value => {
  const gd = document.querySelector('#alert-evidence-graph .js-plotly-plot');
  const trace = gd.data[gd.data.length - 1];
  const i = trace.y.indexOf(value);
  const xa = gd._fullLayout.xaxis;
  return {marker: xa.d2p(gd.layout.shapes[0].x0), point: xa.d2p(trace.x[i]), x: String(trace.x[i]),
          title: xa.title.text};
}"""


def pick_zone(page: Page, label: str) -> None:
    """Choose a zone in the navigation bar: the list holds every zone, so search it as a user would."""
    page.locator("#zone-choice").click()
    page.locator("input.dash-dropdown-search").fill(label[:-1])
    page.get_by_role("option").filter(has_text=label).first.click()


def browser_zone(page: Page) -> str:
    """The zone the browser reports (what the UI follows when the profile names none)."""
    return str(page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone"))


def flow_alert(plant: Plant) -> tuple[str, datetime, float]:
    """Forty minutes of a key on the pump and an alert triggered at its 21st point."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=50)
    key = f"flow{uuid.uuid4().hex[:4]}"
    points = [
        {
            "timestamp": start + timedelta(minutes=i),
            "device_id": uuid.UUID(plant.pump),
            "key": key,
            "value": 10 + i * 0.5,
            "unit": "m3/h",
            "quality": 100,
        }
        for i in range(41)
    ]
    trigger = points[20]
    message = f"Flow high {uuid.uuid4().hex[:6]}"
    with plant.platform.engine.begin() as conn:
        conn.execute(insert(telemetry), points)
        conn.execute(
            insert(alerts).values(
                device_id=uuid.UUID(plant.pump),
                severity="warning",
                message=message,
                key=key,
                value=trigger["value"],
                threshold=19.5,
                status="active",
                triggered_at=trigger["timestamp"],
            )
        )
    return message, trigger["timestamp"], trigger["value"]


@pytest.mark.parametrize("zone", ["America/Chicago", "Asia/Kolkata"])
def test_evidence_marker_sits_on_its_point_in_the_browsers_zone(
    plant: Plant, login: Callable[..., Page], zone: str
) -> None:
    message, when, value = flow_alert(plant)
    page = login("operator", timezone_id=zone)
    page.goto(f"{plant.base}/ui/alerts")
    named = browser_zone(page)  # Chromium may name Asia/Kolkata by its older alias Asia/Calcutta
    assert ZoneInfo(named).utcoffset(when) == ZoneInfo(zone).utcoffset(when)
    expect(page.locator("#zone-label")).to_have_text(f"Times in {named}")
    local = when.astimezone(ZoneInfo(zone))
    # The grid shows the trigger in the browser's zone, and its header says which zone.
    row = page.locator(".ag-row").filter(has_text=message)
    # Other tests' newer alerts may push this one below the rows the grid renders: filter the grid to it.
    expect(page.locator(".ag-row").first).to_be_visible()
    page.evaluate(
        "(text) => dash_ag_grid.getApi('alerts-grid').setGridOption('quickFilterText', text)", message
    )
    expect(row.locator("[col-id=time]")).to_have_text(local.strftime("%Y-%m-%d %H:%M:%S"))
    expect(page.locator(".ag-header-cell[col-id=time]")).to_contain_text(named)
    row.get_by_text(message).click()
    expect(page.locator("#alert-evidence-graph .main-svg").first).to_be_visible()
    drawn = page.evaluate(MARKER_AND_POINT, value)
    assert abs(drawn["marker"] - drawn["point"]) < 1, drawn
    assert drawn["x"].startswith(local.strftime("%Y-%m-%d %H:%M")), drawn
    assert named in drawn["title"]
    shot(page, f"alert-evidence-{zone.replace('/', '-')}")


def test_profile_zone_overrides_the_browsers(plant: Plant, login: Callable[..., Page]) -> None:
    page = login("engineer", timezone_id="Asia/Kolkata")
    page.goto(f"{plant.base}/ui/device/{plant.boiler}")
    named = browser_zone(page)
    expect(page.locator("#zone-label")).to_have_text(f"Times in {named}")
    pick_zone(page, "Europe/Berlin")
    expect(page.locator("#zone-label")).to_have_text("Times in Europe/Berlin")
    expect(page.locator("#latest-table thead")).to_contain_text("time (Europe/Berlin)")
    # Units as written, and the value rounded.
    expect(page.locator("#latest-table tbody").first).to_contain_text("°C")
    page.reload()
    expect(page.locator("#zone-label")).to_have_text("Times in Europe/Berlin")
    pick_zone(page, "Follow the browser")
    expect(page.locator("#zone-label")).to_have_text(f"Times in {named}")
    assert re.search(r"\d{4}-\d\d-\d\d", page.locator("#latest-table tbody").first.inner_text())
