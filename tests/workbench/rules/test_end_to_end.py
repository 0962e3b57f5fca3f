"""Every rule type with data through the real ingest path: MQTT publish -> ingest -> COPY -> bus -> engine."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ingest.service import IngestService
from tests.workbench.rules.conftest import Rig, alerts_of
from workbench.live.bus import EventBus
from workbench.mqtt import MqttPublisher
from workbench.platform import Platform, Services
from workbench.rules.engine import RuleEngine

pytestmark = pytest.mark.slow


@pytest.fixture
def plant(rules_platform: Platform, mqtt_url: str) -> Iterator[tuple[Platform, MqttPublisher]]:
    """Ingest (MQTT subscriber, batch writer) on a fresh bus, and a device-side MQTT publisher."""
    settings = replace(
        rules_platform.settings, mqtt_url=mqtt_url, ingest_client_id=f"e2e-{uuid.uuid4().hex[:6]}"
    )
    platform = replace(rules_platform, settings=settings, bus=EventBus(), services=Services())
    service = IngestService(settings, platform.engine, platform.bus)
    service.start()
    sender = MqttPublisher(mqtt_url)
    sender.start()
    yield platform, sender
    sender.stop()
    service.stop()


def send(sender: MqttPublisher, device: str, key: str, value: float, at: datetime) -> None:
    """A device publishes one reading (QoS 1)."""
    sender.publish(f"insa/devices/{device}/telemetry/{key}", {"value": value, "timestamp": at.isoformat()})


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_every_rule_type_through_ingest_with_a_restart_and_late_points(
    plant: tuple[Platform, MqttPublisher], rig: Rig
) -> None:
    platform, sender = plant
    area = f"e2e-{uuid.uuid4().hex[:4]}"
    a, b = rig.devices(2, type="compressor", area=area)
    held = rig.rule(
        "threshold",
        {"key": "temp", "operator": ">", "value": 80, "duration_seconds": 120},
        target={"area": area},
    )
    compare = rig.rule(
        "comparison",
        {
            "left": {"device": a, "key": "out"},
            "operator": ">",
            "right": {"device": b, "key": "out"},
            "offset": 10,
        },
    )
    spread = rig.rule(
        "statistical",
        {"key": "vib", "function": "range", "window": "5m", "operator": ">", "value": 3},
        target={"device_type": "compressor"},
    )
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    engine = RuleEngine(platform, reload_seconds=0.5).start()
    try:
        send(sender, a, "temp", 85, base)
        send(sender, a, "temp", 86, base + timedelta(seconds=60))
        send(sender, b, "out", 20, base)
        send(sender, a, "out", 31, base + timedelta(seconds=5))
        for i, v in enumerate([1.0, 1.5, 2.0, 5.5]):
            send(sender, b, "vib", v, base + timedelta(seconds=10 * i))
        [pair] = wait_for(lambda: alerts_of(platform, compare))
        assert (str(pair["device_id"]), pair["value"], pair["threshold"]) == (a, 31, 30)
        [wide] = wait_for(lambda: alerts_of(platform, spread))
        assert (str(wide["device_id"]), wide["value"]) == (b, 4.5)
        wait_for(lambda: engine.idle(1) and not engine._queue.qsize())
        assert alerts_of(platform, held) == []  # held 60 s of 120 s so far
    finally:
        engine.stop()
    # A new engine (restart) continues the duration window from rule_state.
    engine = RuleEngine(platform, reload_seconds=0.5).start()
    try:
        send(sender, a, "temp", 90, base + timedelta(seconds=130))
        [hot] = wait_for(lambda: alerts_of(platform, held))
        assert (str(hot["device_id"]), hot["value"]) == (a, 90)
        assert hot["triggered_at"] == base + timedelta(seconds=130)
        # A late point below the threshold (before the watermark) leaves the alert open...
        send(sender, a, "temp", 20, base + timedelta(seconds=30))
        wait_for(lambda: engine.idle(1))
        time.sleep(0.5)
        assert alerts_of(platform, held)[0]["status"] == "active"
        # ...an on-time one resolves it.
        send(sender, a, "temp", 20, base + timedelta(seconds=140))
        wait_for(lambda: alerts_of(platform, held)[0]["status"] == "resolved")
    finally:
        engine.stop()
