"""The UI in a real browser: login, live values over MQTT, dashboards, alerts, roles, screenshots."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import insert, select

from tests.workbench.ui.conftest import Plant, shot
from workbench.db.tables import alerts, dashboards, devices, rules
from workbench.mqtt import host_port, make_client

pytestmark = pytest.mark.slow


def wait_live(page: Page) -> None:
    """Until the page's Socket.IO subscriptions are confirmed by the server."""
    page.wait_for_function("window.wbLive && window.wbLive.state.subscribed >= 1", timeout=10_000)


class Publisher:
    """A connected MQTT client publishing design §6.2 messages (QoS 1)."""

    def __init__(self, url: str) -> None:
        self.client = make_client(url)
        host, port = host_port(url)
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, device_id: str, telemetry: dict[str, float]) -> None:
        body = {
            "timestamp": datetime.now(UTC).isoformat(),
            "device_id": device_id,
            "telemetry": {k: {"value": v, "unit": "C"} for k, v in telemetry.items()},
        }
        self.client.publish(f"insa/devices/{device_id}/telemetry", json.dumps(body), qos=1).wait_for_publish(
            5
        )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_login_is_required_and_overview_lists_devices(
    browser: Browser, plant: Plant, login: Callable[[str], Page]
) -> None:
    anonymous = browser.new_page()
    anonymous.goto(f"{plant.base}/ui/alerts")
    expect(anonymous).to_have_url(re.compile(r"/login\?next=/ui/alerts"))
    anonymous.fill("#email", plant.users["viewer"][0])
    anonymous.fill("#password", "wrong password")
    anonymous.click("#login")
    expect(anonymous.locator(".alert-danger")).to_contain_text("Wrong e-mail or password")
    shot(anonymous, "login")
    anonymous.close()

    page = login("operator")
    expect(page.locator("#device-grid")).to_contain_text("Pump P-101")
    expect(page.locator("#device-grid")).to_contain_text("Utilities")
    expect(page.locator("#kpi-online")).to_have_text(re.compile(r"\d+ / \d+"))
    shot(page, "overview")
    page.locator("#theme-dark").check()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    shot(page, "overview-dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    page.locator("#theme-dark").uncheck()


def test_device_goes_online_and_a_value_arrives_live_after_an_mqtt_publish(
    plant: Plant, login: Callable[[str], Page], mqtt_url: str
) -> None:
    page = login("operator")
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#device-status")).to_have_text("offline")
    # Let the page settle (Plotly draws three charts) before the clock starts.
    expect(page.locator("#history-graph .main-svg").first).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(3)
    wait_live(page)
    value = 55.25
    publisher = Publisher(mqtt_url)
    started = time.monotonic()
    publisher.send(plant.pump, {"temperature": value})
    publisher.close()
    # Poll every 20 ms in the page: expect()'s own back-off would blur the measurement.
    page.wait_for_function(
        "document.querySelector('td[data-key=temperature]').textContent === '55.25'", polling=20, timeout=2000
    )
    elapsed = time.monotonic() - started
    print(f"publish -> rendered: {elapsed * 1000:.0f} ms")
    expect(page.locator("#device-status")).to_have_text("online", timeout=2000)
    assert elapsed < 2.0, f"live value took {elapsed:.2f} s"
    # The live chart was extended with the new point (extendData), not redrawn from history.
    page.wait_for_function(
        "(() => { const g = document.querySelector("
        "'#live-graph-1 .js-plotly-plot, #live-graph-1.js-plotly-plot');"
        " return g && g.data[0].y[g.data[0].y.length - 1] === 55.25; })()",
        timeout=5000,
    )
    shot(page, "device")
    page.goto(f"{plant.base}/ui/")
    expect(page.locator(f"#status-{plant.pump}")).to_have_text("online")


def test_operator_builds_a_dashboard_and_finds_it_after_reload(
    plant: Plant, login: Callable[[str], Page]
) -> None:
    page = login("operator")
    page.goto(f"{plant.base}/ui/dashboards")
    page.click("#dashboard-new")
    name = f"Line 1 overview {uuid.uuid4().hex[:6]}"
    page.fill("#dashboard-name", name)
    choose(page, "#widget-device", "Pump P-101")
    choose(page, "#widget-keys", "temperature")
    page.click("#widget-add")
    choose(page, "#widget-type", "Gauge")
    page.click("#widget-add")
    choose(page, "#widget-type", "Device status grid")
    page.click("#widget-add")
    cards = page.locator("#builder-canvas .wb-widget")
    expect(cards).to_have_count(3)
    page.locator("#builder-canvas .wb-widget").nth(2).locator("button[title=remove]").click()
    expect(cards).to_have_count(2)
    first = page.locator("#builder-canvas .wb-widget").nth(0)
    first.locator("button[title=wider]").click()
    page.locator("#builder-canvas .wb-widget").nth(1).locator("button[title='move left']").click()
    expect(page.locator("#builder-canvas .wb-widget").nth(0)).to_contain_text("Gauge")
    shot(page, "dashboard-builder")
    page.click("#dashboard-save")
    expect(page.locator("#dashboard-title")).to_have_text(name)
    page.reload()
    expect(page.locator("#dashboard-title")).to_have_text(name)
    expect(page.locator("#dashboard-grid .wb-widget")).to_have_count(2)
    expect(page.locator("#dashboard-grid .main-svg").first).to_be_visible()
    shot(page, "dashboard")
    with plant.platform.engine.connect() as conn:
        row = conn.execute(select(dashboards).where(dashboards.c.name == name)).one()
    assert [w["type"] for w in row.widgets] == ["gauge", "line"]
    assert [item["w"] for item in row.layout["items"]] == [6, 7]
    page.goto(f"{plant.base}/ui/dashboards")
    expect(page.locator("#dashboard-list")).to_contain_text(name)


def choose(page: Page, dropdown: str, label: str) -> None:
    """Pick ``label`` in a dcc.Dropdown."""
    page.locator(dropdown).click()
    page.get_by_role("option", name=label).first.click()
    page.keyboard.press("Escape")
    expect(page.locator(dropdown)).to_contain_text(label)


def test_operator_acknowledges_an_alert(plant: Plant, login: Callable[[str], Page]) -> None:
    message = f"Temperature high {uuid.uuid4().hex[:6]}"
    with plant.platform.engine.begin() as conn:
        alert_id = conn.execute(
            insert(alerts)
            .values(
                device_id=uuid.UUID(plant.pump),
                severity="critical",
                message=message,
                key="temperature",
                value=95.0,
                threshold=90.0,
                status="active",
                triggered_at=datetime.now(UTC),
            )
            .returning(alerts.c.id)
        ).scalar_one()
    page = login("operator")
    page.goto(f"{plant.base}/ui/alerts")
    page.get_by_text(message).click()
    expect(page.locator("#alert-evidence")).to_contain_text(message)
    page.fill("#alert-comment", "checked the pump on site")
    page.click("#alert-ack")
    expect(page.locator("#alert-done")).to_contain_text("acknowledged")
    row = page.locator(f".ag-row[row-id='{alert_id}']")
    expect(row.locator("[col-id=status]")).to_have_text("acknowledged")
    shot(page, "alerts")
    with plant.platform.engine.connect() as conn:
        stored = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    assert stored.status == "acknowledged" and stored.ack_comment == "checked the pump on site"


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
    page.goto(f"{plant.base}/ui/rules")
    expect(page.locator("#rules-grid")).to_be_visible()
    expect(page.locator("#rule-form")).to_have_count(0)
    expect(page.locator("#rule-enable")).to_have_count(0)
    page.goto(f"{plant.base}/ui/reports")
    expect(page.locator("#reports-grid")).to_be_visible()
    expect(page.locator("#report-form")).to_have_count(0)


def test_engineer_sees_config_and_command_controls(plant: Plant, login: Callable[[str], Page]) -> None:
    page = login("engineer")
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#config-text")).to_contain_text("setpoint")
    page.fill("#config-text", '{"setpoint": 45}')
    page.click("#config-save")
    expect(page.locator("#config-result")).to_contain_text("Saved")
    with plant.platform.engine.connect() as conn:
        config = conn.execute(select(devices.c.config).where(devices.c.id == uuid.UUID(plant.pump))).scalar()
    assert config == {"setpoint": 45}
    expect(page.locator("#command-form")).to_be_visible()
    shot(page, "device-engineer")


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
