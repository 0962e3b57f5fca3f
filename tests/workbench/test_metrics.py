"""``/metrics`` after real traffic: every metric ``workbench.metrics`` declares has moved.

The traffic is the platform's own paths: API calls and a login, HTTP and MQTT ingest (with a rejected
point), a Socket.IO client, a threshold rule raising an alert, a Modbus connector (one device answering,
one not), and a report rendered from a notebook. The exposition is parsed with Prometheus' own parser.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import nbformat
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete, insert

from ingest.connectors.manager import ConnectorManager
from ingest.connectors.modbus_codec import Entry
from ingest.service import IngestService
from ingest.simulator.modbus_server import ModbusServer
from tests.conftest import free_port
from tests.workbench.api.fixtures import PASSWORD, ApiDevice, ApiUser
from workbench import metrics
from workbench.db.tables import devices, rules
from workbench.live.socket import live_server
from workbench.mqtt import MqttPublisher
from workbench.platform import EXTENSION, Platform
from workbench.reports.service import ReportService
from workbench.rules.engine import RuleEngine

pytestmark = pytest.mark.slow

REPORT = [
    'database_url = ""\nstart = ""\nend = ""\ntimezone = "UTC"\ndevices = []\narea = ""\nreport_dir = ""',
    "print('a report of', start, 'to', end)",
]


def declared() -> dict[str, MetricWrapperBase]:
    """Every metric object of ``workbench.metrics``, by exposition name."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            found[value._name] = value  # prometheus_client keeps the name here
    return found


def wait_for(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


class GaugeSpy:
    """Records every non-zero value the platform sets on an unlabelled gauge (levels fall back to 0)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.moved: set[str] = set()
        for name, metric in declared().items():
            if metric._type == "gauge" and not metric._labelnames:
                for verb in ("set", "inc"):
                    monkeypatch.setattr(metric, verb, self._spy(name, getattr(metric, verb), metric))

    def _spy(self, name: str, original: Callable[..., None], metric: Any) -> Callable[..., None]:
        def spied(*args: Any, **kwargs: Any) -> None:
            original(*args, **kwargs)
            if metric._value.get():  # the value just set
                self.moved.add(name)

        return spied


@pytest.fixture
def login(client: FlaskClient, api_users: dict[str, ApiUser]) -> str:
    """An access token from a real login (the user then counts as active)."""
    user = api_users["engineer"]
    answer = client.post("/api/v1/auth/login", json={"email": user.email, "password": PASSWORD})
    assert answer.status_code == 200, answer.get_json()
    token: str = answer.get_json()["access_token"]
    return token


@pytest.fixture
def report_service(app: Flask, tmp_path: Path) -> Iterator[ReportService]:
    """A report service on the app's platform running one small notebook."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in REPORT]
    notebook.cells[0].metadata["tags"] = ["parameters"]
    (tmp_path / "reports").mkdir()
    nbformat.write(notebook, tmp_path / "reports" / "tiny_metrics.ipynb")
    service = ReportService(app.extensions[EXTENSION], notebooks_dir=tmp_path / "reports", max_parallel=1)
    yield service
    service.close()


def test_every_declared_metric_moves_under_real_traffic(
    app: Flask,
    client: FlaskClient,
    login: str,
    api_device: ApiDevice,
    mqtt_url: str,
    report_service: ReportService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    bearer = {"Authorization": f"Bearer {login}"}
    engine = platform.engine
    with engine.begin() as conn:
        conn.execute(
            insert(rules).values(
                name=f"metrics-{uuid.uuid4().hex[:6]}",
                type="threshold",
                condition={"key": "metrics_amps", "operator": ">", "value": 10},
                action={"type": "alert", "severity": "critical"},
                cooldown_seconds=0,
                device_id=api_device.id,
            )
        )
    rule_engine = RuleEngine(platform, reload_seconds=0.2, tick_seconds=3600).start()
    settings = replace(
        platform.settings,
        mqtt_url=mqtt_url,
        ingest_client_id=f"metrics-{uuid.uuid4().hex[:6]}",
        sparkplug_enabled=False,
        connectors_reload_s=0.2,
        ingest_offline_after=3600,
    )
    ingest = IngestService(settings, engine, platform.bus)
    server = ModbusServer([Entry("level", 0)], free_port())
    registers = {"registers": [{"key": "level", "address": 0}], "interval_ms": 50, "timeout_ms": 200}
    with engine.begin() as conn:
        for port in (server.port, free_port()):  # one device answers, one does not
            conn.execute(
                insert(devices).values(
                    name=f"metrics-plc-{port}",
                    type="plc",
                    protocol="modbus",
                    connection_string=f"tcp://127.0.0.1:{port}",
                    config=registers,
                )
            )
    manager = ConnectorManager(engine, ingest.pipeline, settings)
    sender = MqttPublisher(mqtt_url)
    live = live_server(platform)
    assert live is not None
    spy = GaugeSpy(monkeypatch)
    server.start()
    ingest.start()
    manager.start()
    sender.start()
    socket_client = live.socketio.test_client(app, auth={"token": login})
    try:
        assert socket_client.is_connected()
        for _ in range(20):
            assert client.get("/api/v1/devices", headers=bearer).status_code == 200
        batch = [{"key": "metrics_amps", "value": float(i)} for i in range(5000)]
        batch.append({"key": "metrics_amps", "value": "not a number"})
        answer = client.post("/api/v1/telemetry", json=batch, headers=api_device.headers)
        assert answer.get_json()["accepted"] == 5000 and answer.get_json()["rejected"] == 1
        sender.publish(f"insa/devices/{api_device.id}/telemetry/metrics_mqtt", {"value": 1.0})
        report_id = report_service.request("tiny_metrics", "html", {}, requested_by=None)
        during = client.get("/metrics").get_data(as_text=True)  # the report waits in its queue
        rendered = report_service.run(report_id)
        assert rendered["status"] == "done", rendered.get("error")
        wait_for(lambda: rule_engine.idle() and _total("workbench_action_runs_total") > 0)
        wait_for(lambda: _total("workbench_mqtt_messages_total") > 0)
        wait_for(lambda: _total("workbench_connector_errors_total") > 0)
        wait_for(lambda: _total("workbench_connector_readings_total") > 0)
        wait_for(lambda: _sample("workbench_devices_online") > 0, timeout=30)
        exposition = client.get("/metrics").get_data(as_text=True)
    finally:
        socket_client.disconnect()
        sender.stop()
        manager.stop()
        ingest.stop()
        server.stop()
        rule_engine.stop()
        with engine.begin() as conn:  # the session database is shared: leave no connector devices behind
            conn.execute(delete(devices).where(devices.c.name.like("metrics-plc-%")))

    families = {family.name: family for family in text_string_to_metric_families(exposition)}
    earlier = {family.name: family for family in text_string_to_metric_families(during)}
    still: list[str] = []
    for name, metric in declared().items():
        family = families.get(name.removesuffix("_total"))
        assert family is not None, f"{name} is declared but not exposed"
        samples = [*family.samples, *earlier[family.name].samples]
        if metric._type == "gauge":
            if name not in spy.moved and not any(s.value > 0 for s in samples):
                still.append(name)
        else:
            suffix = "_count" if metric._type == "histogram" else "_total"
            if not any(s.name.endswith(suffix) and s.value > 0 for s in samples):
                still.append(name)
    assert not still, f"declared metrics that never moved: {still}"
    reports_waiting = [
        s.value for s in earlier["workbench_queue_length"].samples if s.labels["queue"] == "reports"
    ]
    assert reports_waiting and reports_waiting[0] >= 1
    latency = families["workbench_api_request_seconds"]
    routes = {s.labels["endpoint"] for s in latency.samples if s.name.endswith("_count") and s.value >= 20}
    assert "/api/v1/devices" in routes  # labelled by route template, never by raw path
    queues = {s.labels["queue"] for s in families["workbench_queue_length"].samples}
    assert {"rule_batches", "rule_actions", "reports"} <= queues
    assert _sample("workbench_active_users") >= 1


def _total(name: str) -> float:
    """Sum of a counter's samples now."""
    return sum(s.value for family in REGISTRY.collect() for s in family.samples if s.name == name)


def _sample(name: str) -> float:
    value = REGISTRY.get_sample_value(name)
    return float(value or 0.0)
