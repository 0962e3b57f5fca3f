"""The Reports form: a default range with data, an empty range said before rendering, the placeholder's
parameters passed on, times and next runs in the user's zone."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from tests.workbench.ui.conftest import Plant, shot
from workbench.db.tables import report_schedules, reports

pytestmark = [pytest.mark.slow, pytest.mark.chromium]
ZONE = "Asia/Kolkata"
SHOWN = "Asia/Calcutta"  # the name Chromium reports for that zone: the page labels times with it


def report_count(plant: Plant) -> int:
    """Reports requested so far."""
    with plant.platform.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(reports)).scalar_one())


def test_reports_form_range_parameters_and_schedules(plant: Plant, login: Callable[..., Page]) -> None:
    page = login("engineer", timezone_id=ZONE)
    page.goto(f"{plant.base}/ui/reports")
    # The plant's data is from the last hour: the default range (the last day) holds it, and says so.
    expect(page.locator("#report-start")).to_have_value("now-1d")
    expect(page.locator("#report-end")).to_have_value("now")
    expect(page.locator("#report-window-data")).to_contain_text(re.compile(r"[\d,]+ points and \d+ alerts"))
    expect(page.locator("#report-window-data")).to_contain_text(SHOWN)
    # The placeholder shows the notebook's own parameters with their defaults.
    expect(page.locator("#report-parameters")).to_have_attribute(
        "placeholder", json.dumps({"devices": [], "area": "", "top_rules": 10})
    )

    # A range without data is said before anything renders, and Generate refuses it.
    page.fill("#report-start", "2020-01-01T00:00")
    page.fill("#report-end", "2020-01-02T00:00")
    expect(page.locator("#report-window-empty")).to_contain_text("No data between 2020-01-01 00:00")
    before = report_count(plant)
    page.click("#report-generate")
    expect(page.locator("#report-result")).to_contain_text("the report would be empty")
    assert report_count(plant) == before

    # Every parameter of the placeholder is taken, and the report runs in the user's zone.
    page.fill("#report-start", "now-1d")
    page.fill("#report-end", "now")
    given = {"devices": ["Pump P-101"], "area": "Line 1", "top_rules": 3}
    page.fill("#report-parameters", json.dumps(given))
    expect(page.locator("#report-window-data")).to_be_visible()
    page.click("#report-generate")
    expect(page.locator("#report-queued")).to_contain_text("Report queued")
    with plant.platform.engine.connect() as conn:
        row = conn.execute(select(reports).order_by(reports.c.created_at.desc()).limit(1)).mappings().one()
    assert row["notebook"] == "alert_summary"
    assert {k: row["parameters"][k] for k in given} == given
    assert ZoneInfo(row["parameters"]["timezone"]).utcoffset(datetime.now()) == ZoneInfo(ZONE).utcoffset(
        datetime.now()
    )
    expect(page.locator("#reports-grid")).to_contain_text(f"Requested ({SHOWN})")

    # A schedule shows its next run, in the user's zone.
    cron = f"{uuid.uuid4().int % 60} 8 * * *"
    page.fill("#report-cron", cron)
    page.click("#report-schedule")
    expect(page.locator("#report-result")).to_contain_text("Scheduled")
    with plant.platform.engine.connect() as conn:
        schedule = (
            conn.execute(select(report_schedules).where(report_schedules.c.cron == cron)).mappings().one()
        )
    assert schedule["timezone"] == SHOWN
    after = schedule["created_at"].astimezone(ZoneInfo(ZONE))
    upcoming = croniter(cron, after).get_next(datetime).astimezone(ZoneInfo(ZONE))
    assert upcoming > datetime.now(UTC)
    grid = page.locator("#schedules-grid")
    expect(grid).to_contain_text(f"Next run ({SHOWN})")
    expect(grid.locator(".ag-row").filter(has_text=cron)).to_contain_text(
        upcoming.strftime("%Y-%m-%d %H:%M:%S")
    )
    shot(page, "reports-form")
