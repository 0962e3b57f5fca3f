"""Users (admin only) and device API keys: create shown once, list, revoke, rotate."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import ApiDevice, ApiUser
from workbench.auth import api_keys
from workbench.platform import EXTENSION

Headers = Callable[[str], dict[str, str]]


def test_user_lifecycle(client: FlaskClient, headers_for: Headers) -> None:
    admin = headers_for("admin")
    email = f"life-{uuid.uuid4().hex[:6]}@example.com"
    made = client.post(
        "/api/v1/users", json={"email": email, "password": "12345678", "role": "viewer"}, headers=admin
    ).get_json()
    url = f"/api/v1/users/{made['id']}"
    assert client.put(url, json={"role": "operator", "disabled": True}, headers=admin).get_json()["disabled"]
    login = client.post("/api/v1/auth/login", json={"email": email, "password": "12345678"})
    assert login.status_code == 401
    listed = client.get("/api/v1/users?role=operator&page_size=500", headers=admin).get_json()
    assert made["id"] in {u["id"] for u in listed["items"]}
    assert client.put(url, json={"role": "king"}, headers=admin).status_code == 422
    assert client.delete(url, headers=admin).status_code == 204
    assert client.get(url, headers=admin).status_code == 404
    assert client.get("/api/v1/users", headers=headers_for("engineer")).status_code == 403


def test_admin_cannot_lock_themselves_out(
    client: FlaskClient, headers_for: Headers, api_users: dict[str, ApiUser]
) -> None:
    url = f"/api/v1/users/{api_users['admin'].id}"
    assert client.put(url, json={"role": "viewer"}, headers=headers_for("admin")).status_code == 409
    assert client.delete(url, headers=headers_for("admin")).status_code == 409


def test_keys_create_list_rotate_revoke(
    app: Flask, client: FlaskClient, headers_for: Headers, other_api_device: ApiDevice
) -> None:
    engine = app.extensions[EXTENSION].engine
    eng = headers_for("engineer")
    made = client.post(
        "/api/v1/keys",
        json={"device_id": str(other_api_device.id), "name": "gateway", "rate_limit": 20},
        headers=eng,
    )
    assert made.status_code == 201
    key = made.get_json()
    assert key["api_key"].startswith(key["prefix"]) and api_keys.authenticate(engine, key["api_key"])
    listed = client.get(f"/api/v1/keys?device_id={other_api_device.id}", headers=eng).get_json()
    assert key["id"] in {k["id"] for k in listed["items"]}
    assert all("api_key" not in k and "key_hash" not in k for k in listed["items"])
    rotated = client.post(f"/api/v1/keys/{key['id']}/rotate", headers=eng).get_json()
    assert rotated["rate_limit"] == 20 and rotated["name"] == "gateway" and rotated["id"] != key["id"]
    assert api_keys.authenticate(engine, key["api_key"]) is None
    assert api_keys.authenticate(engine, rotated["api_key"]) is not None
    revoked = client.post(f"/api/v1/keys/{rotated['id']}/revoke", headers=eng).get_json()
    assert revoked["revoked_at"] is not None and api_keys.authenticate(engine, rotated["api_key"]) is None
    with_revoked = client.get(
        f"/api/v1/keys?device_id={other_api_device.id}&include_revoked=true", headers=eng
    )
    assert {key["id"], rotated["id"]} <= {k["id"] for k in with_revoked.get_json()["items"]}
    missing = client.post("/api/v1/keys", json={"device_id": str(uuid.uuid4()), "name": "x"}, headers=eng)
    assert missing.status_code == 404
    assert client.get("/api/v1/keys", headers=headers_for("operator")).status_code == 403
