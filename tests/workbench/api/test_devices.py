"""Devices: CRUD with filters and paging, the key shown once, status, config and commands over MQTT."""

from __future__ import annotations

import json
import queue
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, insert, select

from workbench.auth import api_keys
from workbench.db.tables import telemetry
from workbench.mqtt import MqttPublisher, make_client
from workbench.platform import EXTENSION, Platform

Headers = Callable[[str], dict[str, str]]


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def _create(client: FlaskClient, headers: Headers, **fields: object) -> dict:  # type: ignore[type-arg]
    body = {"name": f"pump-{uuid.uuid4().hex[:6]}", "type": "pump", **fields}
    response = client.post("/api/v1/devices", json=body, headers=headers("engineer"))
    assert response.status_code == 201, response.get_json()
    created: dict = response.get_json()  # type: ignore[type-arg]
    return created


def test_create_returns_the_key_once(app: Flask, client: FlaskClient, headers_for: Headers) -> None:
    created = _create(client, headers_for, area="north", protocol="modbus", rate_limit=50)
    key = api_keys.authenticate(_platform(app).engine, created["api_key"])
    assert key is not None and key.device_id == uuid.UUID(created["id"]) and key.rate_limit == 50
    again = client.get(f"/api/v1/devices/{created['id']}", headers=headers_for("viewer"))
    assert again.status_code == 200 and "api_key" not in again.get_json()
    assert again.get_json()["area"] == "north" and again.get_json()["status"] == "offline"


def test_list_filters_and_pages(client: FlaskClient, headers_for: Headers) -> None:
    area = f"area-{uuid.uuid4().hex[:6]}"
    for index in range(5):
        _create(client, headers_for, area=area, protocol="opcua" if index % 2 else "mqtt")
    viewer = headers_for("viewer")
    page = client.get(f"/api/v1/devices?area={area}&page_size=2&page=2", headers=viewer).get_json()
    assert page["total"] == 5 and page["page"] == 2 and len(page["items"]) == 2
    opcua = client.get(f"/api/v1/devices?area={area}&protocol=opcua", headers=viewer).get_json()
    assert opcua["total"] == 2 and {d["protocol"] for d in opcua["items"]} == {"opcua"}
    assert client.get("/api/v1/devices?page_size=501", headers=viewer).status_code == 422
    unknown = client.get("/api/v1/devices?colour=red", headers=viewer)
    assert unknown.status_code == 422 and "colour" in unknown.get_json()["error"]["message"]


def test_update_refuses_unknown_fields_and_wrong_types(client: FlaskClient, headers_for: Headers) -> None:
    device = _create(client, headers_for)
    url, eng = f"/api/v1/devices/{device['id']}", headers_for("engineer")
    changed = client.put(url, json={"location": "hall 3", "status": "maintenance"}, headers=eng)
    assert changed.status_code == 200 and changed.get_json()["location"] == "hall 3"
    bad = client.put(url, json={"nmae": "typo", "type": 5}, headers=eng)
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["details"]["fields"]["json"]
    assert set(fields) == {"nmae", "type"}
    assert client.put(url, json={"name": "x"}, headers=headers_for("operator")).status_code == 403
    assert client.put(f"/api/v1/devices/{uuid.uuid4()}", json={}, headers=eng).status_code == 404


def test_delete_removes_its_telemetry(app: Flask, client: FlaskClient, headers_for: Headers) -> None:
    device = _create(client, headers_for)
    engine = _platform(app).engine
    with engine.begin() as conn:
        conn.execute(
            insert(telemetry).values(timestamp=datetime.now(UTC), device_id=device["id"], key="t", value=1.0)
        )
    gone = client.delete(f"/api/v1/devices/{device['id']}", headers=headers_for("engineer"))
    assert gone.status_code == 204
    with engine.connect() as conn:
        left = conn.execute(select(func.count()).where(telemetry.c.device_id == device["id"])).scalar()
    assert left == 0
    assert api_keys.authenticate(engine, device["api_key"]) is None
    assert client.get(f"/api/v1/devices/{device['id']}", headers=headers_for("viewer")).status_code == 404


def test_status(client: FlaskClient, headers_for: Headers) -> None:
    device = _create(client, headers_for)
    status = client.get(f"/api/v1/devices/{device['id']}/status", headers=headers_for("viewer")).get_json()
    assert status == {
        "id": device["id"],
        "status": "offline",
        "status_detail": None,
        "last_seen": None,
        "keys": 0,
        "latest_timestamp": None,
    }


def test_config_and_command_need_a_broker(client: FlaskClient, headers_for: Headers) -> None:
    device = _create(client, headers_for)
    url = f"/api/v1/devices/{device['id']}/config"
    response = client.post(url, json={"config": {"rate": 5}}, headers=headers_for("engineer"))
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "broker_unavailable"


@pytest.fixture
def publisher(app: Flask, mqtt_url: str) -> Iterator[MqttPublisher]:
    platform = _platform(app)
    publisher = MqttPublisher(mqtt_url)
    publisher.start()
    platform.mqtt = publisher
    yield publisher
    platform.mqtt = None
    publisher.stop()


def test_config_is_published_retained_and_commands_reach_the_device(
    client: FlaskClient, headers_for: Headers, publisher: MqttPublisher, mqtt_url: str
) -> None:
    device = _create(client, headers_for)
    base = f"/api/v1/devices/{device['id']}"
    config = client.post(f"{base}/config", json={"config": {"rate": 5}}, headers=headers_for("engineer"))
    assert config.status_code == 200
    assert config.get_json()["topic"] == f"insa/devices/{device['id']}/config"
    stored = client.get(base, headers=headers_for("viewer")).get_json()
    assert stored["config"] == {"rate": 5}
    # A device connecting later still gets the retained config.
    received: queue.Queue[tuple[str, dict, bool]] = queue.Queue()  # type: ignore[type-arg]
    subscriber = make_client(mqtt_url)
    subscriber.on_message = lambda c, u, m: received.put((m.topic, json.loads(m.payload), m.retain))
    from workbench.mqtt import host_port

    subscriber.connect(*host_port(mqtt_url))
    subscriber.subscribe(f"insa/devices/{device['id']}/#", qos=1)
    subscriber.loop_start()
    try:
        topic, payload, retained = received.get(timeout=5)
        assert topic.endswith("/config") and payload["config"] == {"rate": 5} and retained
        assert (
            client.post(
                f"{base}/command", json={"command": "restart"}, headers=headers_for("operator")
            ).status_code
            == 403
        )
        sent = client.post(
            f"{base}/command",
            json={"command": "restart", "params": {"delay": 1}},
            headers=headers_for("engineer"),
        )
        assert sent.status_code == 202
        topic, payload, retained = received.get(timeout=5)
        assert topic.endswith("/command") and payload["command"] == "restart" and not retained
        assert payload["params"] == {"delay": 1}
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()


def test_protocol_configs_are_validated_with_field_errors(client: FlaskClient, headers_for: Headers) -> None:
    engineer = headers_for("engineer")
    bad = {
        "registers": [
            {"key": "ok", "address": 0, "type": "float64", "word_order": "little"},
            {"key": "x", "address": 70000, "type": "float128", "function": "coil", "writable": "maybe"},
            {"key": "s", "address": 1, "function": "discrete", "type": "string"},
        ],
        "unit_id": 300,
    }
    body = {"name": "plc", "type": "plc", "protocol": "modbus", "config": bad}
    refused = client.post("/api/v1/devices", json=body, headers=engineer)
    assert refused.status_code == 422, refused.get_json()
    fields = refused.get_json()["error"]["details"]["fields"]["json"]["config"]
    assert set(fields) == {"registers", "unit_id"}
    assert set(fields["registers"]) == {"1", "2"}  # entry 0 (float64, word order little) is fine
    assert set(fields["registers"]["1"]) == {"address", "type", "writable"}
    assert "holding or input" in fields["registers"]["2"]["type"][0]

    good = {
        "registers": [bad["registers"][0], {"key": "serial", "address": 8, "type": "string", "length": 4}]
    }
    device = _create(client, headers_for, protocol="modbus", config=good)
    # An update is checked against the stored protocol; so is a pushed config.
    update = client.put(
        f"/api/v1/devices/{device['id']}", json={"config": {"registers": "all"}}, headers=engineer
    )
    assert (
        update.status_code == 422
        and "registers" in update.get_json()["error"]["details"]["fields"]["json"]["config"]
    )
    switch = client.put(f"/api/v1/devices/{device['id']}", json={"protocol": "opcua"}, headers=engineer)
    assert (
        switch.status_code == 422
        and "nodes" in switch.get_json()["error"]["details"]["fields"]["json"]["config"]
    )
    pushed = client.post(
        f"/api/v1/devices/{device['id']}/config",
        json={"config": {"registers": [{"key": "k", "address": 1, "type": "float"}]}},
        headers=engineer,
    )
    assert pushed.status_code == 422
    opcua = {
        "name": "srv",
        "type": "plc",
        "protocol": "opcua",
        "config": {"nodes": {"ns=2;x=1": "t", "ns=2;s=T": "bad key!"}},
    }
    refused = client.post("/api/v1/devices", json=opcua, headers=engineer)
    nodes = refused.get_json()["error"]["details"]["fields"]["json"]["config"]["nodes"]
    assert refused.status_code == 422 and set(nodes) == {"ns=2;x=1", "ns=2;s=T"}


def test_commands_in_the_device_protocol_are_checked_recorded_and_listed(
    client: FlaskClient, headers_for: Headers
) -> None:
    registers = [
        {"key": "speed", "address": 4, "type": "uint16", "scale": 0.1, "writable": True},
        {"key": "pressure", "address": 0, "type": "float32"},
    ]
    device = _create(client, headers_for, protocol="modbus", config={"registers": registers})
    base = f"/api/v1/devices/{device['id']}"
    engineer = headers_for("engineer")
    refused = client.post(
        f"{base}/command",
        json={"command": "write", "params": {"key": "pressure", "value": 1}},
        headers=engineer,
    )
    assert refused.status_code == 422
    assert (
        "not declared writable" in refused.get_json()["error"]["details"]["fields"]["json"]["params.key"][0]
    )
    # No broker needed: ingest delivers Modbus commands; the answer is the pending record.
    sent = client.post(
        f"{base}/command",
        json={"command": "write", "params": {"key": "speed", "value": 150}},
        headers=engineer,
    )
    assert sent.status_code == 202, sent.get_json()
    record = sent.get_json()
    assert (record["status"], record["protocol"], record["params"]["words"]) == ("pending", "modbus", [1500])
    one = client.get(f"{base}/commands/{record['id']}", headers=headers_for("viewer")).get_json()
    assert one["id"] == record["id"] and one["status"] == "pending"
    listed = client.get(f"{base}/commands", headers=headers_for("viewer")).get_json()["items"]
    assert [c["id"] for c in listed] == [record["id"]]
    other = _create(client, headers_for)
    assert (
        client.get(f"/api/v1/devices/{other['id']}/commands/{record['id']}", headers=engineer).status_code
        == 404
    )
