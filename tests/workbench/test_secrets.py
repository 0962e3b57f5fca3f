"""Device and webhook secrets: never read back by any role, kept when not resent, sealed in the database."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, insert, select, text

from tests.workbench.rules.receivers import HttpReceiver
from workbench.db.tables import devices, rules
from workbench.platform import EXTENSION, Platform
from workbench.rules.actions.base import ActionContext
from workbench.rules.actions.webhook import WebhookAction
from workbench.rules.types import Rule
from workbench.secrets import DEVICE_CONFIG, SecretError, open_all, open_value, seal_stored

Headers = Callable[[str], dict[str, str]]
ROLES = ["admin", "engineer", "operator", "viewer"]
PASSWORD = "opcua-pa55-" + uuid.uuid4().hex
USER = "plc-user-" + uuid.uuid4().hex[:6]
HOOK_SECRET = "hook-s3cret-" + uuid.uuid4().hex
BEARER = "Bearer tok-" + uuid.uuid4().hex


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


@pytest.fixture
def engine(app: Flask) -> Engine:
    """The app's engine."""
    return _platform(app).engine


def _key(app: Flask) -> str:
    return str(app.config["SECRET_KEY"])


@pytest.fixture
def opcua_device(client: FlaskClient, headers_for: Headers) -> str:
    """An OPC-UA device with a login, created through the API."""
    config = {"endpoint": "opc.tcp://127.0.0.1:4840", "nodes": {"ns=2;i=2": "t"}, "username": USER}
    config["password"] = PASSWORD
    body = {"name": f"plc-{uuid.uuid4().hex[:6]}", "type": "plc", "protocol": "opcua", "config": config}
    response = client.post("/api/v1/devices", json=body, headers=headers_for("admin"))
    assert response.status_code == 201, response.get_json()
    assert PASSWORD not in response.get_data(as_text=True)
    return str(response.get_json()["id"])


@pytest.fixture
def webhook_rule(client: FlaskClient, headers_for: Headers, opcua_device: str) -> str:
    """A rule whose webhook action carries a signing secret and an Authorization header."""
    action = {"type": "webhook", "url": "https://example.com/hook", "secret": HOOK_SECRET}
    action["headers"] = {"Authorization": BEARER}
    body = {
        "name": f"hook-{uuid.uuid4().hex[:6]}",
        "type": "threshold",
        "device_id": opcua_device,
        "condition": {"key": "t", "operator": ">", "value": 1},
        "action": [action],
    }
    response = client.post("/api/v1/rules", json=body, headers=headers_for("admin"))
    assert response.status_code == 201, response.get_json()
    assert HOOK_SECRET not in response.get_data(as_text=True) and BEARER not in response.get_data(
        as_text=True
    )
    return str(response.get_json()["id"])


@pytest.mark.parametrize("role", ROLES)
def test_no_role_reads_a_secret_back(
    client: FlaskClient, headers_for: Headers, opcua_device: str, webhook_rule: str, role: str
) -> None:
    reads = [
        f"/api/v1/devices/{opcua_device}",
        "/api/v1/devices?page_size=500",
        f"/api/v1/rules/{webhook_rule}",
        "/api/v1/rules?page_size=500",
    ]
    for url in reads:
        response = client.get(url, headers=headers_for(role))
        if response.status_code == 403 and role == "viewer" and "/rules" in url:
            continue  # viewers do not read rules at all
        assert response.status_code == 200, (url, response.status_code)
        body = response.get_data(as_text=True)
        for secret in (PASSWORD, USER, HOOK_SECRET, BEARER, "$sealed"):
            assert secret not in body, (role, url, secret)
    device = client.get(f"/api/v1/devices/{opcua_device}", headers=headers_for(role)).get_json()
    assert device["config"]["password"] == {"set": True} and device["config"]["username"] == {"set": True}
    assert "nodes" in device["config"]  # the rest of the config is readable as before
    if role == "viewer":
        return
    [action] = client.get(f"/api/v1/rules/{webhook_rule}", headers=headers_for(role)).get_json()["action"]
    assert action["secret"] == {"set": True} and action["headers"] == {"Authorization": {"set": True}}
    assert action["url"] == "https://example.com/hook"


def test_the_database_holds_ciphertext(
    app: Flask, engine: Engine, opcua_device: str, webhook_rule: str
) -> None:
    with engine.connect() as conn:
        config_text = conn.execute(
            text("SELECT config::text FROM devices WHERE id = :id"), {"id": opcua_device}
        ).scalar_one()
        action_text = conn.execute(
            text("SELECT action::text FROM rules WHERE id = :id"), {"id": webhook_rule}
        ).scalar_one()
        config = conn.execute(
            select(devices.c.config).where(devices.c.id == uuid.UUID(opcua_device))
        ).scalar()
    assert PASSWORD not in config_text and USER not in config_text and "$sealed" in config_text
    assert HOOK_SECRET not in action_text and BEARER not in action_text and "$sealed" in action_text
    assert open_value(config["password"], _key(app)) == PASSWORD  # sealed with the app's key
    with pytest.raises(SecretError):
        open_value(config["password"], "another secret key")


def test_updates_without_the_secret_keep_it(
    app: Flask,
    client: FlaskClient,
    headers_for: Headers,
    engine: Engine,
    opcua_device: str,
    webhook_rule: str,
) -> None:
    # The config sent back as read ({"set": true}) and a config that leaves the login out both keep it.
    shown = client.get(f"/api/v1/devices/{opcua_device}", headers=headers_for("admin")).get_json()["config"]
    shown["nodes"] = {"ns=2;i=3": "u"}
    assert (
        client.put(
            f"/api/v1/devices/{opcua_device}", json={"config": shown}, headers=headers_for("admin")
        ).status_code
        == 200
    )
    pushed = {"endpoint": "opc.tcp://127.0.0.1:4841", "nodes": {"ns=2;i=4": "v"}}
    answer = client.put(
        f"/api/v1/devices/{opcua_device}", json={"config": pushed}, headers=headers_for("admin")
    )
    assert answer.status_code == 200 and PASSWORD not in answer.get_data(as_text=True)
    with engine.connect() as conn:
        stored = conn.execute(
            select(devices.c.config).where(devices.c.id == uuid.UUID(opcua_device))
        ).scalar()
    opened = open_all(stored, DEVICE_CONFIG, _key(app))
    assert (opened["password"], opened["username"], opened["endpoint"]) == (
        PASSWORD,
        USER,
        pushed["endpoint"],
    )
    # null removes a secret; a new string replaces it.
    client.put(
        f"/api/v1/devices/{opcua_device}",
        json={"config": {**pushed, "password": "new-one", "username": None}},
        headers=headers_for("admin"),
    )
    with engine.connect() as conn:
        stored = conn.execute(
            select(devices.c.config).where(devices.c.id == uuid.UUID(opcua_device))
        ).scalar()
    opened = open_all(stored, DEVICE_CONFIG, _key(app))
    assert opened["password"] == "new-one" and "username" not in opened

    # A rule's action edited without its secret and header value keeps both; the webhook still signs.
    changed = {
        "type": "webhook",
        "url": "https://example.org/hook2",
        "headers": {"Authorization": {"set": True}},
    }
    response = client.put(
        f"/api/v1/rules/{webhook_rule}", json={"action": [changed]}, headers=headers_for("admin")
    )
    assert response.status_code == 200, response.get_json()
    receiver = HttpReceiver("127.0.0.2")
    try:
        with engine.connect() as conn:
            row = conn.execute(select(rules).where(rules.c.id == uuid.UUID(webhook_rule))).mappings().one()
        [action] = Rule.from_row(row).actions
        assert action["url"] == "https://example.org/hook2"
        platform = _platform(app)
        allowed = platform.settings.__class__(
            **{**platform.settings.__dict__, "webhook_allowed_networks": "127.0.0.2"}
        )
        context = ActionContext(
            Platform(settings=allowed, engine=engine, bus=platform.bus), Rule.from_row(row)
        )
        WebhookAction().notify(context, {**action, "url": receiver.url})
    finally:
        receiver.close()
    headers, body = receiver.requests[-1]
    assert headers["Authorization"] == BEARER
    assert (
        headers["X-Workbench-Signature"]
        == "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    )


def test_secrets_stored_before_are_sealed_at_start(app: Flask, engine: Engine) -> None:
    plain = {"endpoint": "opc.tcp://x:4840", "nodes": {}, "password": "legacy-pw"}
    action: list[dict[str, Any]] = [{"type": "webhook", "url": "https://e.com", "secret": "legacy-s"}]
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices).values(name="legacy", type="plc", config=plain).returning(devices.c.id)
        ).scalar_one()
        rule_id = conn.execute(
            insert(rules)
            .values(
                name="legacy",
                type="threshold",
                condition={"key": "t", "operator": ">", "value": 1},
                action=action,
            )
            .returning(rules.c.id)
        ).scalar_one()
    assert seal_stored(engine, _key(app)) >= 2
    assert seal_stored(engine, _key(app)) == 0  # idempotent
    with engine.connect() as conn:
        config = conn.execute(select(devices.c.config).where(devices.c.id == device_id)).scalar()
        stored = conn.execute(select(rules.c.action).where(rules.c.id == rule_id)).scalar()
    assert "legacy-pw" not in json.dumps(config) and "legacy-s" not in json.dumps(stored)
    assert open_value(config["password"], _key(app)) == "legacy-pw"
    assert open_value(stored[0]["secret"], _key(app)) == "legacy-s"
