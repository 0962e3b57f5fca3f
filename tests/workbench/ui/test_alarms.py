"""Alarms where operators look, a key never seen before shown live, and pages and links by role."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import insert

from tests.workbench.ui.conftest import Plant, shot
from tests.workbench.ui.test_pages import Publisher, wait_live
from workbench.db.tables import alerts, devices, rules

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


def boiler_alarms(plant: Plant) -> tuple[str, str, str]:
    """A disabled rule on the boiler, two open alerts (warning, critical): returns messages and rule name."""
    tag = uuid.uuid4().hex[:6]
    with plant.platform.engine.begin() as conn:
        rule_id = conn.execute(
            insert(rules)
            .values(
                name=f"Boiler hot {tag}",
                type="threshold",
                device_id=uuid.UUID(plant.boiler),
                condition={"key": "temperature", "operator": ">", "value": 500},
                action={"type": "alert", "severity": "critical", "message": "hot"},
                enabled=False,
            )
            .returning(rules.c.id)
        ).scalar_one()
        messages = []
        for severity in ("warning", "critical"):
            message = f"Boiler {severity} {tag}"
            conn.execute(
                insert(alerts).values(
                    device_id=uuid.UUID(plant.boiler),
                    rule_id=None if severity == "warning" else rule_id,
                    severity=severity,
                    message=message,
                    key="temperature",
                    value=81.0,
                    status="active",
                    triggered_at=datetime.now(UTC),
                )
            )
            messages.append(message)
    return messages[0], messages[1], f"Boiler hot {tag}"


def test_worst_open_alarm_on_cards_overview_and_device_page_with_links(
    plant: Plant, login: Callable[..., Page]
) -> None:
    warning, critical, rule = boiler_alarms(plant)
    page = login("operator")
    card_alarm = page.locator(f"#alarm-{plant.boiler}")
    expect(card_alarm).to_have_attribute("data-severity", "critical")
    expect(card_alarm).to_contain_text(re.compile(r"\d+ open · critical"))
    expect(card_alarm.locator(".badge")).to_have_class(re.compile(r"bg-danger"))
    expect(page.locator("#overview-alarm")).to_contain_text("worst: critical")
    shot(page, "overview-alarms")
    # The device page: its worst alarm beside its status, its open alerts listed, each with its rule.
    page.locator("#device-grid").get_by_role("link", name="Boiler B-7").click()
    expect(page).to_have_url(re.compile(f"/ui/device/{plant.boiler}"))
    expect(page.locator("#device-alarm")).to_have_attribute("data-severity", "critical")
    listing = page.locator("#device-alerts")
    expect(listing).to_contain_text(warning)
    expect(listing).to_contain_text(critical)
    listing.get_by_role("link", name=rule).click()
    expect(page).to_have_url(re.compile(r"/ui/rules/"))
    expect(page.locator("#rules-grid .ag-row-selected")).to_contain_text(rule)
    # The alerts list links each alert to its device.
    page.goto(f"{plant.base}/ui/alerts")
    row = page.locator(".ag-row").filter(has_text=critical)
    expect(row.get_by_role("link", name=rule)).to_be_visible()
    row.get_by_role("link", name="Boiler B-7").click()
    expect(page).to_have_url(re.compile(f"/ui/device/{plant.boiler}"))


def test_a_key_never_seen_before_appears_live_on_the_device_page(
    plant: Plant, login: Callable[..., Page], mqtt_url: str
) -> None:
    # A device of its own: publishing brings it online, which other tests of the pump must not see.
    mixer = uuid.uuid4()
    with plant.platform.engine.begin() as conn:
        conn.execute(insert(devices).values(id=mixer, name="Mixer M-3", type="mixer", area="Line 2"))
    page = login("viewer")
    page.goto(f"{plant.base}/ui/device/{mixer}")
    expect(page.locator("#latest-table")).to_be_visible()
    wait_live(page)
    key = f"vib{uuid.uuid4().hex[:4]}"
    publisher = Publisher(mqtt_url)
    try:
        publisher.send(str(mixer), {key: 4.56789})
        fresh = page.locator("#latest-new tr").filter(has_text=key)
        expect(fresh).to_contain_text("4.568", timeout=5000)
        expect(fresh).to_contain_text("°C")  # the publisher's unit "C", as users write it
        publisher.send(str(mixer), {key: 7.5})
        expect(fresh).to_contain_text("7.5", timeout=5000)
    finally:
        publisher.close()


def test_pages_and_links_follow_the_role(plant: Plant, login: Callable[..., Page]) -> None:
    _, critical, rule = boiler_alarms(plant)
    viewer = login("viewer")
    expect(viewer.locator("#nav-alerts")).to_be_visible()
    expect(viewer.locator("#nav-rules")).to_have_count(0)
    viewer.goto(f"{plant.base}/ui/rules")
    expect(viewer.locator("#forbidden")).to_be_visible()
    expect(viewer.locator("#rules-grid")).to_have_count(0)
    # The alert names its rule, without a link the viewer could not open.
    viewer.goto(f"{plant.base}/ui/alerts")
    row = viewer.locator(".ag-row").filter(has_text=critical)
    expect(row).to_contain_text(rule)
    expect(row.get_by_role("link", name=rule)).to_have_count(0)
    expect(row.get_by_role("link", name="Boiler B-7")).to_be_visible()
    operator = login("operator")
    expect(operator.locator("#nav-rules")).to_be_visible()
    operator.goto(f"{plant.base}/ui/rules")
    expect(operator.locator("#rules-grid")).to_be_visible()
    expect(operator.locator("#rule-form")).to_have_count(0)
