"""Browser-test fixtures: the served app with ingest on the test broker, plant data, headless Chromium."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import insert, select

from app import create_app
from tests.conftest import ROOT
from tests.workbench.live.serving import make_user, serve
from workbench.db.rollups import rebuild
from workbench.db.tables import devices, latest_values, telemetry
from workbench.mqtt import MqttPublisher, host_port, make_client
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings

ARTEFACTS = ROOT / "test-artefacts"
# CI machines are small and busy: waits are generous, timings that matter are measured explicitly.
expect.set_options(timeout=20_000)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Plant:
    """What the browser tests work on."""

    base: str
    platform: Platform
    pump: str
    boiler: str
    users: dict[str, tuple[str, str]]


def seed(platform: Platform) -> tuple[str, str]:
    """Two devices (offline) with an hour of history and latest values; returns their ids."""
    pump, boiler = uuid.uuid4(), uuid.uuid4()
    now = datetime.now(UTC)
    with platform.engine.begin() as conn:
        conn.execute(
            insert(devices),
            [
                {
                    "id": pump,
                    "name": "Pump P-101",
                    "type": "pump",
                    "area": "Line 1",
                    "location": "Hall A",
                    "status": "offline",
                    "config": {"setpoint": 40},
                },
                {
                    "id": boiler,
                    "name": "Boiler B-7",
                    "type": "boiler",
                    "area": "Utilities",
                    "location": "Hall C",
                    "status": "offline",
                    "config": {},
                },
            ],
        )
        history = [
            {
                "timestamp": now - timedelta(seconds=60 * i),
                "device_id": device,
                "key": key,
                "value": base + (i % 7),
                "unit": unit,
                "quality": 100,
            }
            for i in range(60, 0, -1)
            for device, key, base, unit in (
                (pump, "temperature", 40.0, "C"),
                (pump, "pressure", 3.0, "bar"),
                (boiler, "temperature", 80.0, "C"),
            )
        ]
        conn.execute(insert(telemetry), history)
        conn.execute(
            insert(latest_values),
            [
                {
                    "device_id": pump,
                    "key": "pressure",
                    "timestamp": now - timedelta(minutes=1),
                    "value": 3.5,
                    "unit": "bar",
                    "quality": 100,
                },
                {
                    "device_id": pump,
                    "key": "temperature",
                    "timestamp": now - timedelta(minutes=1),
                    "value": 41.0,
                    "unit": "C",
                    "quality": 100,
                },
                {
                    "device_id": boiler,
                    "key": "temperature",
                    "timestamp": now - timedelta(minutes=1),
                    "value": 81.0,
                    "unit": "C",
                    "quality": 100,
                },
            ],
        )
    # The history went straight into telemetry: fold it into the rollups the charts read, as ingest would.
    rebuild(platform.engine, now - timedelta(hours=2), now + timedelta(minutes=1))
    return str(pump), str(boiler)


@pytest.fixture(scope="package")
def plant(settings: Settings, mqtt_url: str) -> Iterator[Plant]:
    """The whole app (ingest on the test broker in-process, as `workbench up` runs it), served."""
    from ingest.service import start_in_process

    configured = replace(settings, mqtt_url=mqtt_url, ingest_client_id=f"ui-tests-{uuid.uuid4().hex[:8]}")
    app = create_app(configured)
    platform: Platform = app.extensions[EXTENSION]
    stop_ingest = start_in_process(platform)
    # As `workbench up`: one connected publisher for device config (retained) and commands.
    publisher = MqttPublisher(mqtt_url)
    publisher.start()
    platform.mqtt = publisher
    pump, boiler = seed(platform)
    warm_up(mqtt_url, platform, boiler)
    users = {role: make_user(platform.engine, role) for role in ("admin", "engineer", "operator", "viewer")}
    try:
        with serve(app) as base:
            yield Plant(base, platform, pump, boiler, users)
    finally:
        stop_ingest()
        platform.mqtt = None
        publisher.stop()


def warm_up(mqtt_url: str, platform: Platform, device_id: str) -> None:
    """Send one message through MQTT -> ingest -> PostgreSQL so first-use costs stay out of the timings."""
    client = make_client(mqtt_url)
    host, port = host_port(mqtt_url)
    client.connect(host, port)
    client.loop_start()
    body = {"device_id": device_id, "telemetry": {"temperature": {"value": 80.5, "unit": "C"}}}
    client.publish(f"insa/devices/{device_id}/telemetry", json.dumps(body), qos=1).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()
    deadline = time.monotonic() + 15
    query = select(latest_values.c.value).where(
        latest_values.c.device_id == uuid.UUID(device_id), latest_values.c.key == "temperature"
    )
    while time.monotonic() < deadline:
        with platform.engine.connect() as conn:
            if conn.execute(query).scalar() == 80.5:
                return
        time.sleep(0.05)
    raise AssertionError("ingest did not store the warm-up message")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def login(browser: Browser, plant: Plant) -> Iterator[Callable[..., Page]]:
    """Open a fresh browser context logged in as a user of ``role`` (context options: time zone, viewport)."""
    contexts = []

    def open_as(role: str, **options: Any) -> Page:
        context = browser.new_context(**{"viewport": {"width": 1400, "height": 1000}, **options})
        context.set_default_timeout(30_000)
        contexts.append(context)
        page = context.new_page()
        email, password = plant.users[role]
        page.goto(f"{plant.base}/ui/")
        expect(page).to_have_url(re.compile(r"/login"))
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("#login")
        expect(page.locator("#who")).to_contain_text(role)
        return page

    yield open_as
    for context in contexts:
        context.close()


def open_admin(page: Page, link: str) -> None:
    """Follow the Admin menu entry ``link`` (e.g. ``#nav-devices``) of the navigation bar, opened first."""
    page.locator("#nav-admin .dropdown-toggle").click()
    page.locator(link).click()


def shot(page: Page, name: str) -> Path:
    """Save a full-page screenshot into test-artefacts/."""
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
