"""The Sparkplug host against Eclipse Tahu's Node client (sparkplug-client), another implementation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from ingest.connectors.sparkplug import SparkplugHost
from tests.ingest.connectors.conftest import quarantined, telemetry, wait_until
from tests.node_peers import NodePeer
from workbench.db.tables import devices

pytestmark = pytest.mark.node


@pytest.fixture
def host(engine: Engine, pipeline: Any, mqtt_url: str) -> Iterator[SparkplugHost]:
    spb_host = SparkplugHost(engine, pipeline, mqtt_url, host_id=f"wb-{uuid.uuid4().hex[:6]}")
    spb_host.start()
    wait_until(lambda: spb_host.stats.state == "connected")
    yield spb_host
    spb_host.stop()


def _row(engine: Engine, path: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(devices).where(devices.c.connection_string == path)).mappings().first()


def test_tahu_births_and_data_are_stored(
    host: SparkplugHost, engine: Engine, mqtt_url: str, peer: Callable[..., NodePeer]
) -> None:
    group = f"tahu-{uuid.uuid4().hex[:6]}"
    node = peer("sparkplug_node.js", mqtt_url, group, "edge1", "boiler")
    node.expect(lambda line: isinstance(line, dict) and line.get("event") == "born")
    # NBIRTH and DBIRTH left together (the normal order): both stored, nothing quarantined.
    device = wait_until(lambda: _row(engine, f"spBv1.0/{group}/edge1/boiler"))
    node_row = wait_until(lambda: _row(engine, f"spBv1.0/{group}/edge1"))
    born = wait_until(lambda: len(telemetry(engine, device["id"])) >= 3 and telemetry(engine, device["id"]))
    values = {r.key: (r.value, r.text_value, r.unit) for r in born}
    assert values == {
        "Outlet_Temp": (21.5, None, "C"),  # the space became _ (README: Sparkplug)
        "Serial": (None, "TAHU-1", None),
        "Setpoint": (50.0, None, None),
    }
    assert [(r.key, r.value) for r in wait_until(lambda: telemetry(engine, node_row["id"]))] == [
        ("Uptime", 7.0)
    ]
    assert not quarantined(engine, device["id"]) and not quarantined(engine, node_row["id"])
    catalogue = _row(engine, f"spBv1.0/{group}/edge1/boiler")["config"]["sparkplug"]["metrics"]
    assert catalogue["Outlet Temp"]["key"] == "Outlet_Temp"

    node.send("data " + json.dumps({"Setpoint": 55.5}))
    wait_until(lambda: [r for r in telemetry(engine, device["id"]) if r.value == 55.5])
    assert host.rebirth_requests == 0
