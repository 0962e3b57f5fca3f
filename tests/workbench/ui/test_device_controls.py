"""The device page's controls by role (viewers none, engineers config and commands), and the Rules page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, update

from tests.workbench.ui.conftest import Plant, shot
from tests.workbench.ui.test_pages import choose
from workbench.db.tables import devices, rules
from workbench.secrets import DEVICE_CONFIG, merge, open_all

pytestmark = [pytest.mark.slow, pytest.mark.chromium]


def test_viewer_gets_no_edit_controls(plant: Plant, login: Callable[[str], Page]) -> None:
    page = login("viewer")
    page.goto(f"{plant.base}/ui/device/{plant.boiler}")
    expect(page.locator("#latest-table")).to_contain_text("temperature")
    expect(page.locator("#config-editor")).to_have_count(0)
    expect(page.locator("#command-form")).to_have_count(0)
    shot(page, "device-viewer")
    page.goto(f"{plant.base}/ui/alerts")
    expect(page.locator("#alerts-grid")).to_be_visible()
    expect(page.locator("#alert-actions")).to_have_count(0)
    page.goto(f"{plant.base}/ui/dashboards")
    expect(page.locator("h1")).to_have_text("Dashboards")
    expect(page.locator("#dashboard-new")).to_have_count(0)
    page.goto(f"{plant.base}/ui/dashboards/new")
    expect(page.locator("#forbidden")).to_be_visible()
    page.goto(f"{plant.base}/ui/rules")  # the API refuses rules to viewers: so does the page
    expect(page.locator("#forbidden")).to_be_visible()
    expect(page.locator("#rules-grid")).to_have_count(0)
    page.goto(f"{plant.base}/ui/reports")
    expect(page.locator("#reports-grid")).to_be_visible()
    expect(page.locator("#report-form")).to_have_count(0)


def test_engineer_sees_config_and_command_controls(plant: Plant, login: Callable[[str], Page]) -> None:
    from workbench.protocols import commands

    # A command that failed shows with its status and reason on the device page.
    engine = plant.platform.engine
    row = commands.record(engine, uuid.UUID(plant.pump), "write", "modbus", {"key": "speed"}, None)
    commands.finish(engine, row["id"], "failed", reason="cannot connect to 10.0.0.9:502")
    page = login("engineer")
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#command-table")).to_contain_text("failed")
    expect(page.locator("#command-table")).to_contain_text("cannot connect to 10.0.0.9:502")
    expect(page.locator("#config-text")).to_contain_text("setpoint")
    page.fill("#config-text", '{"setpoint": 45}')
    page.click("#config-save")
    expect(page.locator("#config-result")).to_contain_text("Saved")
    with plant.platform.engine.connect() as conn:
        config = conn.execute(select(devices.c.config).where(devices.c.id == uuid.UUID(plant.pump))).scalar()
    assert config == {"setpoint": 45}
    expect(page.locator("#command-form")).to_be_visible()
    shot(page, "device-engineer")


def test_the_config_editor_never_shows_a_secret_and_keeps_it(
    plant: Plant, login: Callable[[str], Page]
) -> None:
    key = plant.platform.settings.resolved_secret_key()
    stored = merge({"setpoint": 40, "password": "ui-pa55word"}, None, DEVICE_CONFIG, key)
    with plant.platform.engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == uuid.UUID(plant.pump)).values(config=stored))
    page = login("engineer")
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#config-text")).to_contain_text('"set": true')
    assert "ui-pa55word" not in page.content() and "$sealed" not in page.content()
    page.fill("#config-text", '{"setpoint": 41, "password": {"set": true}}')
    page.click("#config-save")
    expect(page.locator("#config-result")).to_contain_text("Saved")
    with plant.platform.engine.connect() as conn:
        config = conn.execute(select(devices.c.config).where(devices.c.id == uuid.UUID(plant.pump))).scalar()
    assert open_all(config, DEVICE_CONFIG, key) == {"setpoint": 41, "password": "ui-pa55word"}
    with plant.platform.engine.begin() as conn:
        conn.execute(
            update(devices).where(devices.c.id == uuid.UUID(plant.pump)).values(config={"setpoint": 45})
        )


def test_engineer_creates_backtests_and_disables_a_rule(plant: Plant, login: Callable[[str], Page]) -> None:
    page = login("engineer")
    page.goto(f"{plant.base}/ui/rules")
    name = f"Pump hot {uuid.uuid4().hex[:6]}"
    page.fill("#rule-name", name)
    choose(page, "#rule-device", "Pump P-101")
    page.fill("#rule-key", "temperature")
    page.fill("#rule-value", "44")
    page.fill("#rule-message", "Pump above 44 C")
    page.click("#rule-create")
    expect(page.locator("#rule-create-result")).to_contain_text("Rule created")
    page.locator("#rules-grid").get_by_text(name).click()
    page.click("#rule-backtest")
    expect(page.locator("#rule-backtest-graph")).to_contain_text(re.compile(r"[1-9]\d* would-be alerts"))
    page.click("#rule-disable")
    expect(page.locator("#rule-done")).to_contain_text("disabled")
    with plant.platform.engine.connect() as conn:
        row = conn.execute(select(rules).where(rules.c.name == name)).one()
    assert row.enabled is False and row.condition == {"key": "temperature", "operator": ">", "value": 44}
    shot(page, "rules")
    page.goto(f"{plant.base}/ui/reports")
    expect(page.locator("#report-form")).to_be_visible()
    expect(page.locator("#reports-grid")).to_be_visible()
    shot(page, "reports")
