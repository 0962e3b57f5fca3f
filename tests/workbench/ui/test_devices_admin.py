"""The Devices admin page in Chromium: a Modbus device with registers read by "Test connection", keys
rotated (the old one refused by HTTP ingest, the new one accepted), search, and role gating."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from ingest.connectors.modbus_codec import Entry
from ingest.simulator.modbus_server import ModbusServer
from tests.conftest import free_port
from tests.workbench.ui.conftest import Plant, open_admin, shot
from workbench import devices as service
from workbench.auth.principal import Principal
from workbench.auth.users import ROLES
from workbench.db.tables import devices, users

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

REGISTERS = [
    {"key": "pressure", "address": 0, "type": "float32", "unit": "bar"},
    {"key": "flow", "address": 2, "type": "float32", "word_order": "little", "scale": 0.5, "unit": "m3/h"},
]


@pytest.fixture
def modbus() -> Iterator[ModbusServer]:
    """A real Modbus TCP server (pymodbus) serving pressure 4.25 bar and flow 12.5 m³/h."""
    server = ModbusServer([Entry.parse(r) for r in REGISTERS], free_port())
    server.start()
    server.set("pressure", 4.25)
    server.set("flow", 12.5)
    yield server
    server.stop()


def _fill_register(page: Page, row: int, values: dict[str, str]) -> None:
    cells = page.locator("tr.wb-register").nth(row)
    for name, value in values.items():
        field = cells.locator(f'[name="{name}"]')
        if field.evaluate("(el) => el.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


def test_engineer_creates_a_modbus_device_and_reads_it_with_test_connection(
    plant: Plant, login: Callable[..., Page], modbus: ModbusServer
) -> None:
    page = login("engineer")
    open_admin(page, "#nav-devices")
    expect(page.locator("h1")).to_have_text("Devices")
    name = f"PLC {uuid.uuid4().hex[:6]}"
    page.fill("#dev-name", name)
    page.fill("#dev-type", "plc")
    page.fill("#dev-area", "Line 9")
    page.select_option("#dev-protocol", "modbus")
    expect(page.locator("#modbus-form")).to_be_visible()
    page.locator('#modbus-form [name="host"]').fill("127.0.0.1")
    page.locator('#modbus-form [name="port"]').fill(str(modbus.port))
    page.locator('#modbus-form [name="timeout_ms"]').fill("2000")
    page.click("#reg-add")
    expect(page.locator("tr.wb-register")).to_have_count(1)
    _fill_register(page, 0, {"key": "pressure", "address": "0", "type": "float32", "unit": "bar"})
    page.click("#reg-add")
    expect(page.locator("tr.wb-register")).to_have_count(2)
    expect(page.locator("tr.wb-register").nth(0).locator('[name="key"]')).to_have_value("pressure")
    second = {"key": "flow", "address": "2", "type": "float32", "word_order": "little", "scale": "0.5"}
    _fill_register(page, 1, {**second, "unit": "m3/h"})

    page.click("#dev-test")
    values = page.locator("#dev-test-values")
    expect(values).to_contain_text("Read 2 values")
    expect(values.locator("tr", has_text="pressure")).to_contain_text("4.25")
    expect(values.locator("tr", has_text="flow")).to_contain_text("12.5")
    shot(page, "devices")

    # A bad register is named as the API names it, and nothing is saved.
    _fill_register(page, 1, {"address": "two"})
    page.click("#dev-save")
    expect(page.locator("#dev-error")).to_contain_text("registers.1.address: Not a valid integer.")
    _fill_register(page, 1, {"address": "2"})
    page.click("#dev-save")
    expect(page.locator("#dev-saved")).to_contain_text(f"Created {name}")
    expect(page.locator("#key-raw")).to_have_text(re.compile(r"^wbk_"))
    expect(page.locator("#dev-editor-title")).to_have_text(f"Edit {name}")
    with plant.platform.engine.connect() as conn:
        stored = conn.execute(select(devices.c.config).where(devices.c.name == name)).scalar_one()
    assert stored["port"] == modbus.port and [r["key"] for r in stored["registers"]] == ["pressure", "flow"]
    defaults = {"function": "holding", "byte_order": "big", "writable": False}
    assert stored["registers"][1] == {**REGISTERS[1], **defaults}

    # Search finds it; the list shows its protocol.
    page.fill("#dev-search", name)
    rows = page.locator("tr.wb-device-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("modbus")
    # A failing connection is named.
    modbus.stop()
    page.click("#dev-test")
    expect(page.locator("#dev-test-error")).to_contain_text("ConnectionError")


def _post(plant: Plant, key: str) -> int:
    request = urllib.request.Request(
        f"{plant.base}/api/v1/telemetry",
        data=json.dumps({"key": "flow", "value": 3.0}).encode(),
        headers={"X-API-Key": key, "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_rotating_a_key_refuses_the_old_one_and_accepts_the_new(
    plant: Plant, login: Callable[..., Page]
) -> None:
    engine = plant.platform.engine
    with engine.connect() as conn:
        admin = conn.execute(select(users.c.id).where(users.c.email == plant.users["admin"][0])).scalar_one()
    caller = Principal(kind="user", id=admin, role="admin")
    name = f"Meter {uuid.uuid4().hex[:6]}"
    made = service.create(plant.platform, caller, {"name": name, "type": "meter", "protocol": "http"})
    assert _post(plant, made["api_key"]) == 200

    page = login("admin")
    page.goto(f"{plant.base}/ui/devices")
    page.fill("#dev-search", name)
    expect(page.locator("tr.wb-device-row")).to_have_count(1)
    page.click(f"text={name}")
    expect(page.locator("#dev-editor-title")).to_have_text(f"Edit {name}")
    keys = page.locator("tr.wb-key")
    expect(keys).to_have_count(1)
    keys.first.get_by_role("button", name="Rotate").click()
    expect(page.locator("#key-secret")).to_contain_text("the old key is revoked")
    fresh = page.locator("#key-raw").inner_text()
    assert fresh.startswith("wbk_") and fresh != made["api_key"]
    expect(keys).to_have_count(1)
    expect(keys.first).to_have_attribute("data-prefix", fresh[:12])

    assert _post(plant, made["api_key"]) == 401
    assert _post(plant, fresh) == 200

    keys.first.get_by_role("button", name="Revoke").click()
    expect(page.locator("#key-revoked")).to_be_visible()
    expect(keys).to_have_count(0)
    assert _post(plant, fresh) == 401


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_viewers_and_operators_get_no_devices_page(
    plant: Plant, login: Callable[..., Page], role: str
) -> None:
    assert role in ROLES
    page = login(role)
    expect(page.locator("#nav-overview")).to_be_visible()
    expect(page.locator("#nav-devices")).to_have_count(0)
    expect(page.locator("#nav-admin")).to_have_count(0)  # no admin page for this role: no Admin menu
    page.goto(f"{plant.base}/ui/devices")
    expect(page.locator("#forbidden")).to_contain_text(f"Your role ({role}) may not open this page.")
    expect(page.locator("#dev-table")).to_have_count(0)


def test_search_filters_and_sorts_the_list(plant: Plant, login: Callable[..., Page]) -> None:
    page = login("engineer")
    page.goto(f"{plant.base}/ui/devices")
    rows = page.locator("tr.wb-device-row")
    expect(rows.first).to_be_visible()
    # The plant's boiler by part of its name, in any case (the session's database holds other
    # "boiler" devices too: Sparkplug births in tests/ingest register edge nodes named ".../boiler").
    page.fill("#dev-search", "boiler b-7")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Boiler B-7")
    page.fill("#dev-search", "")
    page.select_option("#dev-filter-area", "Line 1")
    expect(rows.first).to_contain_text("Pump P-101")
    expect(page.locator("#dev-pager")).to_contain_text("Page 1 of 1")
    page.select_option("#dev-filter-area", "*")
    page.get_by_role("button", name=re.compile("^Name")).click()
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Name")
