"""The OPC-UA connector against a node-opcua server (Node), another implementation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select

from ingest.connectors.base import DeviceConfig, device_status_setter
from ingest.connectors.opcua import OpcUaConnector
from ingest.connectors.runner import ConnectorRunner
from tests.conftest import free_port
from tests.ingest.connectors.conftest import device_status, make_device, telemetry, wait_until
from tests.node_peers import NodePeer
from workbench.db.tables import devices

pytestmark = pytest.mark.node


@pytest.fixture
def runner() -> Iterator[ConnectorRunner]:
    run = ConnectorRunner()
    yield run
    run.close()


def test_good_nodes_flow_beside_a_bad_one_named_by_status(
    engine: Engine, pipeline: object, runner: ConnectorRunner, peer: Callable[..., NodePeer]
) -> None:
    port = free_port()
    server = peer("opcua_server.js", str(port), json.dumps({"Pump1.Pressure": 3.5, "Pump1.Flow": 100}))
    server.expect(lambda line: isinstance(line, str) and line.startswith("ready"), timeout=60)
    config = {
        "endpoint": f"opc.tcp://127.0.0.1:{port}/peer",
        "nodes": {"ns=1;s=Pump1.Pressure": "pressure", "ns=1;s=Pump1.Flow": "flow", "ns=1;s=Nope": "nope"},
        "sampling_interval_ms": 100,
    }
    device_id = make_device(engine, "opcua", config)
    connector = OpcUaConnector(
        DeviceConfig(device_id, "ua-peer", "opcua", None, config),
        pipeline,  # type: ignore[arg-type]
        device_status_setter(engine),
    )
    runner.start(connector)
    wait_until(lambda: {r.key for r in telemetry(engine, device_id)} == {"pressure", "flow"}, timeout=30)
    wait_until(lambda: device_status(engine, device_id) == "degraded")
    with engine.connect() as conn:
        detail = conn.execute(select(devices.c.status_detail).where(devices.c.id == device_id)).scalar_one()
    assert detail == "nodes failing: ns=1;s=Nope: BadNodeIdUnknown"
    server.send("set Pump1.Flow 123.25")
    wait_until(lambda: [r for r in telemetry(engine, device_id) if r.value == 123.25], timeout=15)
