"""A device key never reads or writes another device's data, whatever route it tries."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import ApiDevice
from workbench.auth import api_keys
from workbench.platform import EXTENSION


def test_device_key_cannot_touch_another_device(
    client: FlaskClient, api_device: ApiDevice, other_api_device: ApiDevice
) -> None:
    other, headers = other_api_device.id, api_device.headers
    write = {"device_id": str(other), "telemetry": {"t": {"value": 1.0}}}
    assert client.post("/api/v1/telemetry", json=write, headers=headers).status_code == 403
    # Its own device's record, config and commands it may read: another's is not found.
    for url in (f"/api/v1/devices/{other}", f"/api/v1/devices/{other}/status"):
        assert client.get(url, headers=headers).status_code == 404, url
    reads = [
        f"/api/v1/telemetry?device_id={other}",
        f"/api/v1/telemetry/latest?device_id={other}",
        f"/api/v1/telemetry/export?device_id={other}&start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z",
        f"/api/v1/keys?device_id={other}",
    ]
    for url in reads:
        assert client.get(url, headers=headers).status_code == 403, url
    changes = [
        ("PUT", f"/api/v1/devices/{other}", {"name": "mine"}),
        ("DELETE", f"/api/v1/devices/{other}", None),
        ("POST", f"/api/v1/devices/{other}/config", {"config": {}}),
        ("POST", f"/api/v1/devices/{other}/command", {"command": "stop"}),
    ]
    for method, url, body in changes:
        assert client.open(url, method=method, json=body, headers=headers).status_code == 403, url
    own = {"device_id": str(api_device.id), "telemetry": {"t": {"value": 1.0}}}
    assert client.post("/api/v1/telemetry", json=own, headers=headers).status_code == 200


def test_a_read_only_key_cannot_write(app: Flask, client: FlaskClient, api_device: ApiDevice) -> None:
    engine = app.extensions[EXTENSION].engine
    _, raw = api_keys.create_key(
        engine, api_device.id, "read only", permissions={"read": True, "write": False}
    )
    body = {"device_id": str(api_device.id), "telemetry": {"t": {"value": 1.0}}}
    refused = client.post("/api/v1/telemetry", json=body, headers={"X-API-Key": raw})
    assert refused.status_code == 403 and "permissions" in refused.get_json()["error"]["message"]
