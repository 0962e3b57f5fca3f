"""The devices service: search (filters, sort, paging, worst alarm), writes, the connection test, and the
UI and the API giving the same answer for the same user."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert

from ingest.connectors.modbus_codec import Entry
from ingest.simulator.modbus_server import ModbusServer
from ingest.simulator.opcua_server import OpcUaServer
from tests.conftest import free_port
from tests.workbench.api.fixtures import ApiUser, sign_in
from tests.workbench.ui.callbacks import DISPATCH
from workbench import devices as service
from workbench.auth import api_keys
from workbench.auth.principal import Principal
from workbench.db.tables import alerts
from workbench.errors import ApiError
from workbench.platform import EXTENSION, Platform
from workbench.ui.connector_forms import REGISTER_FIELDS

Headers = Callable[[str], dict[str, str]]
REGISTERS = [
    {"key": "pressure", "address": 0, "type": "float32", "unit": "bar"},
    {"key": "flow", "address": 2, "type": "float32", "word_order": "little", "scale": 0.5},
]


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def _as(user: ApiUser) -> Principal:
    return Principal(kind="user", id=user.id, role=user.role, email=user.email)


@pytest.fixture
def area(app: Flask, api_users: dict[str, ApiUser]) -> str:
    """Five devices in a fresh area: three pumps, two valves; one pump in critical alarm."""
    platform, admin = _platform(app), _as(api_users["admin"])
    tag = f"area-{uuid.uuid4().hex[:6]}"
    made = {}
    for name, kind in (("P-3", "pump"), ("P-1", "pump"), ("V-2", "valve"), ("P-2", "pump"), ("V-1", "valve")):
        fields = {"name": f"{tag} {name}", "type": kind, "area": tag, "protocol": "mqtt"}
        made[name] = service.create(platform, admin, fields)["id"]
    with platform.engine.begin() as conn:
        conn.execute(
            insert(alerts),
            [
                {"device_id": made["P-2"], "severity": "warning", "status": "active"},
                {"device_id": made["P-2"], "severity": "critical", "status": "acknowledged"},
                {"device_id": made["V-1"], "severity": "critical", "status": "resolved"},
            ],
        )
    return tag


def _names(page: dict[str, Any]) -> list[str]:
    return [item["name"].split(" ")[1] for item in page["items"]]


def test_search_filters_sorts_pages_and_shows_the_worst_open_alarm(
    app: Flask, api_users: dict[str, ApiUser], area: str
) -> None:
    platform, viewer = _platform(app), _as(api_users["viewer"])
    page = service.search(platform, viewer, {"area": area}, page_size=2, page=2)
    assert page["total"] == 5 and _names(page) == ["P-3", "V-1"]
    pumps = service.search(platform, viewer, {"area": area, "type": "pump"}, sort="name", descending=True)
    assert _names(pumps) == ["P-3", "P-2", "P-1"]
    found = service.search(platform, viewer, {"search": f"{area} v-"})
    assert _names(found) == ["V-1", "V-2"]
    by_alarm = service.search(platform, viewer, {"area": area}, sort="alarm", descending=True)
    first = by_alarm["items"][0]
    assert (
        _names(by_alarm)[0] == "P-2" and first["alarm_severity"] == "critical" and first["open_alarms"] == 2
    )
    # A resolved alarm is no alarm.
    assert {i["alarm_severity"] for i in by_alarm["items"][1:]} == {None}
    with pytest.raises(ApiError) as bad:
        service.search(platform, viewer, {}, sort="colour")
    assert bad.value.status == 400 and "sort by one of" in bad.value.message


def test_writes_check_the_role_and_the_config(app: Flask, api_users: dict[str, ApiUser]) -> None:
    platform, engineer = _platform(app), _as(api_users["engineer"])
    with pytest.raises(ApiError) as refused:
        service.create(platform, _as(api_users["operator"]), {"name": "x", "type": "pump"})
    assert refused.value.status == 403 and refused.value.message == "role operator lacks devices:write"
    bad = {"registers": [{"key": "p", "address": "twelve", "type": "float33"}]}
    with pytest.raises(ApiError) as invalid:
        service.create(
            platform, engineer, {"name": "plc", "type": "plc", "protocol": "modbus", "config": bad}
        )
    fields = invalid.value.details["fields"]["json"]["config"]["registers"][0]
    assert invalid.value.status == 422 and set(fields) == {"address", "type"}
    made = service.create(platform, engineer, {"name": f"plc-{uuid.uuid4().hex[:6]}", "type": "plc"})
    changed = service.change(platform, engineer, made["id"], {"area": "north"})
    assert changed["area"] == "north"
    service.remove(platform, engineer, made["id"])
    assert api_keys.authenticate(platform.engine, made["api_key"]) is None
    with pytest.raises(ApiError) as gone:
        service.get(platform, engineer, made["id"])
    assert gone.value.status == 404


def test_rotating_a_key_refuses_the_old_and_accepts_the_new(
    app: Flask, api_users: dict[str, ApiUser]
) -> None:
    platform, engineer = _platform(app), _as(api_users["engineer"])
    made = service.create(platform, engineer, {"name": f"rot-{uuid.uuid4().hex[:6]}", "type": "meter"})
    with pytest.raises(ApiError) as refused:
        api_keys.rotate(platform.engine, _as(api_users["operator"]), made["api_key_id"])
    assert refused.value.status == 403
    fresh = api_keys.rotate(platform.engine, engineer, made["api_key_id"])
    assert api_keys.authenticate(platform.engine, made["api_key"]) is None
    key = api_keys.authenticate(platform.engine, fresh["api_key"])
    assert key is not None and key.device_id == made["id"]
    listed = api_keys.listing(platform.engine, engineer, made["id"])
    assert [k["id"] for k in listed["items"]] == [fresh["id"]] and "key_hash" not in listed["items"][0]


@pytest.fixture
def modbus() -> Iterator[ModbusServer]:
    """A real Modbus TCP server with a pressure and a flow register."""
    server = ModbusServer([Entry.parse(r) for r in REGISTERS], free_port())
    server.start()
    server.set("pressure", 4.25)
    server.set("flow", 12.5)
    yield server
    server.stop()


def test_the_connection_test_reads_once_or_names_the_error(
    app: Flask, api_users: dict[str, ApiUser], modbus: ModbusServer
) -> None:
    platform, engineer = _platform(app), _as(api_users["engineer"])
    config = {"host": "127.0.0.1", "port": modbus.port, "timeout_ms": 2000, "registers": REGISTERS}
    values = service.try_connection(platform, engineer, "modbus", config)
    assert {v["key"]: v["value"] for v in values} == {"pressure": 4.25, "flow": 12.5}
    assert values[0]["unit"] == "bar"
    with pytest.raises(ApiError) as failed:
        service.try_connection(platform, engineer, "modbus", {**config, "port": free_port()})
    assert failed.value.status == 502 and failed.value.message.startswith("ConnectionError: ")
    with pytest.raises(ApiError) as refused:
        service.try_connection(platform, _as(api_users["viewer"]), "modbus", config)
    assert refused.value.status == 403


def _callback(
    client: FlaskClient, outputs: list[str], inputs: list[Any], state: list[Any], changed: str
) -> Any:
    body = {
        "output": ".." + "...".join(outputs) + "..",
        "outputs": [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in outputs],
        "inputs": inputs,
        "changedPropIds": [changed],
        "state": state,
    }
    response = client.post(DISPATCH, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_json()["response"]


def _prop(ident: Any, prop: str, value: Any) -> dict[str, Any]:
    return {"id": ident, "property": prop, "value": value}


def _ui_search(client: FlaskClient, search: str, sort: str = "name") -> list[str]:
    """The devices page's list callback, as the browser fires it for a typed search."""
    view = {"page": 1, "sort": sort, "descending": False}
    inputs = [
        _prop("dev-search", "value", search),
        *[_prop(f"dev-filter-{name}", "value", "*") for name in service.FILTERS],
        [],
        _prop("dev-prev", "n_clicks", None),
        _prop("dev-next", "n_clicks", None),
        _prop("dev-refresh", "data", 0),
    ]
    out = _callback(
        client,
        ["dev-list.children", "dev-pager.children", "dev-view.data"],
        inputs,
        [_prop("dev-view", "data", view)],
        "dev-search.value",
    )
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ident = node.get("props", {}).get("id")
            if isinstance(ident, dict) and ident.get("type") == "dev-open":
                names.append(node["props"]["children"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(out["dev-list"]["children"])
    return names


def test_the_page_and_the_api_answer_alike(
    app: Flask, client: FlaskClient, api_users: dict[str, ApiUser], headers_for: Headers, area: str
) -> None:
    engineer = api_users["engineer"]
    api = client.get(f"/api/v1/devices?search={area}%20p&page_size=25", headers=headers_for("engineer"))
    assert api.status_code == 200
    sign_in(app, client, engineer.id)
    assert _ui_search(client, f"{area} p") == [d["name"] for d in api.get_json()["items"]]
    assert len(api.get_json()["items"]) == 3

    # The same refusal for an operator: the page's callback answers the API's 403 and message.
    refused = client.post(
        "/api/v1/devices", json={"name": "x", "type": "pump"}, headers=headers_for("operator")
    )
    message = refused.get_json()["error"]["message"]
    assert refused.status_code == 403 and message == "role operator lacks devices:write"
    sign_in(app, client, api_users["operator"].id)
    fields = {f"dev-{n}": v for n, v in (("name", "x"), ("type", "pump"), ("area", ""), ("location", ""))}
    state = [
        _prop("dev-editing", "data", None),
        *[_prop(k, "value", v) for k, v in fields.items()],
        _prop("dev-protocol", "value", ""),
        _prop("dev-connection_string", "value", ""),
        *([[]] * (4 + len(REGISTER_FIELDS) + 2)),
    ]
    body = {
        "output": "..dev-result.children...dev-refresh.data...dev-selected.data..",
        "outputs": [
            {"id": o, "property": p}
            for o, p in (("dev-result", "children"), ("dev-refresh", "data"), ("dev-selected", "data"))
        ],
        "inputs": [_prop("dev-save", "n_clicks", 1)],
        "changedPropIds": ["dev-save.n_clicks"],
        "state": state,
    }
    page = client.post(DISPATCH, json=body)
    assert page.status_code == 403 and page.get_json()["error"]["message"] == message
    # A viewer's search is allowed by both, refused neither.
    assert client.get(f"/api/v1/devices?search={area}", headers=headers_for("viewer")).status_code == 200


def test_the_connection_test_reads_opcua_nodes_or_names_the_bad_one(
    app: Flask, api_users: dict[str, ApiUser]
) -> None:
    platform, engineer = _platform(app), _as(api_users["engineer"])
    server = OpcUaServer(free_port(), {"Pump1.Pressure": (3.5, "bar"), "Pump1.Flow": (100.0, None)})
    server.start()
    try:
        nodes = {server.node_id("Pump1.Pressure"): "pressure", server.node_id("Pump1.Flow"): "flow"}
        config = {"endpoint": server.endpoint, "nodes": nodes, "timeout_ms": 4000}
        values = service.try_connection(platform, engineer, "opcua", config)
        assert {v["key"]: v["value"] for v in values} == {"pressure": 3.5, "flow": 100.0}
        missing = f"ns={server.namespace};s=Pump1.DoesNotExist"
        with pytest.raises(ApiError) as bad:
            service.try_connection(platform, engineer, "opcua", {**config, "nodes": {missing: "ghost"}})
        assert bad.value.status == 502 and bad.value.message == f"ValueError: {missing}: BadNodeIdUnknown"
    finally:
        server.stop()
