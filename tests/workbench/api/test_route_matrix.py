"""Every /api/v1 route and the UI's write callbacks x every role: allowed or refused as the matrix says.

The walk is driven by the app's URL map, so routes other modules register are covered as they land.
A route without a declared permission (``require(...)`` or ``public``) fails the suite. For the routes
in ``RECIPES`` the request is valid, so allowed callers must get a 2xx; for the others an allowed
caller must get anything but 401/403 (their bodies need specific content), a refused one exactly
401 (anonymous) or 403.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, insert, select

from tests.workbench.api.fixtures import (
    ALL_CALLERS,
    PASSWORD,
    USER_ROLES,
    ApiDevice,
    ApiUser,
    make_device,
    sign_in,
)
from tests.workbench.ui import callbacks
from workbench.auth import api_keys, tokens
from workbench.auth.guard import permission_of
from workbench.auth.passwords import hash_password
from workbench.auth.permissions import allowed
from workbench.db.tables import alerts, dashboards, devices, quarantine, rules, service_tokens, users
from workbench.mqtt import MqttPublisher
from workbench.platform import EXTENSION, Platform

SKIP_METHODS = {"HEAD", "OPTIONS"}


@functools.cache
def _hash() -> str:
    return hash_password(PASSWORD)


RANGE = "start=2026-01-01T00:00:00Z&end=2026-01-02T00:00:00Z"


@dataclass
class Ctx:
    """What recipes need: the app, its engine, the fixture identities and the calling role."""

    app: Flask
    engine: Engine
    users: dict[str, ApiUser]
    device: ApiDevice
    role: str

    def caller_id(self) -> uuid.UUID | None:
        """The calling user's id (None for a device or anonymous)."""
        user = self.users.get(self.role)
        return user.id if user else None

    def fresh_device(self) -> ApiDevice:
        """A new device, for routes that change or delete it."""
        return make_device(self.app, f"matrix-{uuid.uuid4().hex[:6]}")

    def fresh_user(self) -> uuid.UUID:
        """A new viewer, for routes that change or delete users (one argon2 hash shared by all)."""
        with self.engine.begin() as conn:
            made: uuid.UUID = conn.execute(
                insert(users)
                .values(email=f"m-{uuid.uuid4().hex[:8]}@example.com", role="viewer", password_hash=_hash())
                .returning(users.c.id)
            ).scalar_one()
        return made

    def own_dashboard(self) -> uuid.UUID:
        """A dashboard owned by the caller (owners may edit theirs)."""
        with self.engine.begin() as conn:
            made: uuid.UUID = conn.execute(
                insert(dashboards)
                .values(name="m", layout={}, widgets=[], user_id=self.caller_id())
                .returning(dashboards.c.id)
            ).scalar_one()
        return made

    def refresh_token(self) -> str:
        """A refresh token of the viewer."""
        viewer = self.users["viewer"]
        secret = self.app.config["SECRET_KEY"]
        return tokens.issue(secret, viewer.id, "viewer", viewer.email, kind="refresh")


# (method, rule) -> recipe(ctx) -> (path with query, request kwargs); allowed callers must get 2xx.
Recipe = Callable[[Ctx], tuple[str, dict[str, Any]]]


def _device_body() -> dict[str, Any]:
    return {"name": f"m-{uuid.uuid4().hex[:6]}", "type": "sensor"}


RECIPES: dict[tuple[str, str], Recipe] = {
    ("POST", "/api/v1/auth/login"): lambda c: (
        "/api/v1/auth/login",
        {"json": {"email": c.users["viewer"].email, "password": PASSWORD}},
    ),
    ("POST", "/api/v1/auth/refresh"): lambda c: (
        "/api/v1/auth/refresh",
        {"json": {"refresh_token": c.refresh_token()}},
    ),
    ("POST", "/api/v1/auth/logout"): lambda c: (
        "/api/v1/auth/logout",
        {"json": {"refresh_token": c.refresh_token()}},
    ),
    ("POST", "/api/v1/auth/register"): lambda c: (
        "/api/v1/auth/register",
        {"json": {"email": f"r-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "role": "viewer"}},
    ),
    ("GET", "/api/v1/users"): lambda c: ("/api/v1/users", {}),
    ("POST", "/api/v1/users"): lambda c: (
        "/api/v1/users",
        {"json": {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "role": "viewer"}},
    ),
    ("GET", "/api/v1/users/<uuid:user_id>"): lambda c: (f"/api/v1/users/{c.fresh_user()}", {}),
    ("PUT", "/api/v1/users/<uuid:user_id>"): lambda c: (
        f"/api/v1/users/{c.fresh_user()}",
        {"json": {"role": "operator"}},
    ),
    ("DELETE", "/api/v1/users/<uuid:user_id>"): lambda c: (f"/api/v1/users/{c.fresh_user()}", {}),
    ("PATCH", "/api/v1/users/<uuid:user_id>"): lambda c: (
        f"/api/v1/users/{c.fresh_user()}",
        {"json": {"disabled": True}},
    ),
    ("POST", "/api/v1/users/<uuid:user_id>/reset-password"): lambda c: (
        f"/api/v1/users/{c.fresh_user()}/reset-password",
        {"json": {}},
    ),
    ("GET", "/api/v1/devices"): lambda c: ("/api/v1/devices?type=sensor", {}),
    ("POST", "/api/v1/devices"): lambda c: ("/api/v1/devices", {"json": _device_body()}),
    ("GET", "/api/v1/devices/<uuid:device_id>"): lambda c: (f"/api/v1/devices/{c.device.id}", {}),
    ("PUT", "/api/v1/devices/<uuid:device_id>"): lambda c: (
        f"/api/v1/devices/{c.fresh_device().id}",
        {"json": {"location": "hall"}},
    ),
    ("DELETE", "/api/v1/devices/<uuid:device_id>"): lambda c: (f"/api/v1/devices/{c.fresh_device().id}", {}),
    ("GET", "/api/v1/devices/<uuid:device_id>/status"): lambda c: (
        f"/api/v1/devices/{c.device.id}/status",
        {},
    ),
    ("POST", "/api/v1/devices/<uuid:device_id>/config"): lambda c: (
        f"/api/v1/devices/{c.fresh_device().id}/config",
        {"json": {"config": {"rate": 1}}},
    ),
    ("POST", "/api/v1/devices/<uuid:device_id>/command"): lambda c: (
        f"/api/v1/devices/{c.device.id}/command",
        {"json": {"command": "ping"}},
    ),
    ("GET", "/api/v1/telemetry"): lambda c: (f"/api/v1/telemetry?device_id={c.device.id}&{RANGE}", {}),
    ("GET", "/api/v1/telemetry/latest"): lambda c: (f"/api/v1/telemetry/latest?device_id={c.device.id}", {}),
    ("GET", "/api/v1/telemetry/aggregate"): lambda c: (
        f"/api/v1/telemetry/aggregate?device_id={c.device.id}&keys=t&{RANGE}&interval=1m",
        {},
    ),
    ("GET", "/api/v1/telemetry/downsample"): lambda c: (
        f"/api/v1/telemetry/downsample?device_id={c.device.id}&key=t&{RANGE}",
        {},
    ),
    ("GET", "/api/v1/telemetry/export"): lambda c: (
        f"/api/v1/telemetry/export?device_id={c.device.id}&{RANGE}&format=csv",
        {},
    ),
    ("POST", "/api/v1/telemetry"): lambda c: (
        "/api/v1/telemetry",
        {"json": {"device_id": str(c.device.id), "telemetry": {"t": {"value": 1.5}}}},
    ),
    ("GET", "/api/v1/dashboards"): lambda c: ("/api/v1/dashboards", {}),
    ("POST", "/api/v1/dashboards"): lambda c: ("/api/v1/dashboards", {"json": {"name": "d"}}),
    ("GET", "/api/v1/dashboards/<uuid:dashboard_id>"): lambda c: (
        f"/api/v1/dashboards/{c.own_dashboard()}",
        {},
    ),
    ("PUT", "/api/v1/dashboards/<uuid:dashboard_id>"): lambda c: (
        f"/api/v1/dashboards/{c.own_dashboard()}",
        {"json": {"is_public": True}},
    ),
    ("DELETE", "/api/v1/dashboards/<uuid:dashboard_id>"): lambda c: (
        f"/api/v1/dashboards/{c.own_dashboard()}",
        {},
    ),
    ("GET", "/api/v1/keys"): lambda c: (f"/api/v1/keys?device_id={c.device.id}", {}),
    ("POST", "/api/v1/keys"): lambda c: (
        "/api/v1/keys",
        {"json": {"device_id": str(c.device.id), "name": "k"}},
    ),
    ("GET", "/api/v1/keys/<uuid:key_id>"): lambda c: (f"/api/v1/keys/{c.device.key_id}", {}),
    ("POST", "/api/v1/keys/<uuid:key_id>/revoke"): lambda c: (f"/api/v1/keys/{_spare_key(c)}/revoke", {}),
    ("POST", "/api/v1/keys/<uuid:key_id>/rotate"): lambda c: (f"/api/v1/keys/{_spare_key(c)}/rotate", {}),
    ("GET", "/api/v1/openapi.json"): lambda c: ("/api/v1/openapi.json", {}),
}


def _spare_key(ctx: Ctx) -> uuid.UUID:
    key_id, _ = api_keys.create_key(ctx.engine, ctx.device.id, "spare")
    return key_id


def api_routes(app: Flask) -> Iterator[tuple[str, str, Callable[..., Any]]]:
    """(method, rule, view function) of every /api/v1 route."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - SKIP_METHODS):
            view_class = getattr(view, "view_class", None)
            handler = getattr(view_class, method.lower(), view) if view_class else view
            yield method, rule.rule, handler


def _generic_path(rule: str) -> str:
    # Unknown ids: allowed callers get 404 (or 422), which is neither 401 nor 403.
    def fill(match: re.Match[str]) -> str:
        converter = match.group(1) or "string"
        return {"uuid": str(uuid.uuid4()), "int": "1", "float": "1.0"}.get(converter, "x")

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", fill, rule)


@pytest.fixture(scope="module")
def broker(app: Flask, mqtt_url: str) -> Iterator[None]:
    """A connected publisher, so config and command routes can succeed."""
    platform: Platform = app.extensions[EXTENSION]
    previous = platform.mqtt
    publisher = MqttPublisher(mqtt_url)
    publisher.start()
    platform.mqtt = publisher
    yield
    platform.mqtt = previous
    publisher.stop()


def test_every_api_route_declares_a_permission(app: Flask) -> None:
    undeclared = [f"{m} {r}" for m, r, view in api_routes(app) if not permission_of(view)[0]]
    assert undeclared == [], "routes without require(...) or public"


@pytest.mark.parametrize("caller", ALL_CALLERS)
def test_route_by_role_follows_the_matrix(
    app: Flask,
    client: FlaskClient,
    caller: str,
    headers_for: Callable[[str], dict[str, str]],
    api_users: dict[str, ApiUser],
    api_device: ApiDevice,
    broker: None,
) -> None:
    ctx = Ctx(app, app.extensions[EXTENSION].engine, api_users, api_device, caller)
    failures, checked_2xx = [], 0
    for method, rule, view in api_routes(app):
        _, permission = permission_of(view)
        recipe = RECIPES.get((method, rule))
        path, kwargs = recipe(ctx) if recipe else (_generic_path(rule), {})
        if method in ("POST", "PUT", "PATCH") and "json" not in kwargs:
            kwargs["json"] = {}
        status = client.open(path, method=method, headers=headers_for(caller), **kwargs).status_code
        may = permission is None or (caller != "anonymous" and allowed(caller, permission))
        if may and recipe:
            ok = 200 <= status < 300
            checked_2xx += ok
        elif may:
            ok = status not in (401, 403)
        else:
            ok = status == (401 if caller == "anonymous" else 403)
        if not ok:
            failures.append(f"{method} {path} [{permission}] as {caller}: {status}")
    assert failures == []
    assert checked_2xx > 0 or caller == "anonymous" or caller == "device"


# The UI's write actions, fired as forged Dash callbacks: (permission, fire(client, ctx) -> check()).
# ``check()`` says whether the write happened; the matrix decides whether it should have.
def _ui_disable_rule(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    with ctx.engine.begin() as conn:
        rule_id = conn.execute(
            insert(rules)
            .values(
                name=f"m-{uuid.uuid4().hex[:6]}",
                condition={"key": "t", "operator": ">", "value": 1},
                action={},
                enabled=True,
            )
            .returning(rules.c.id)
        ).scalar_one()
    callbacks.disable_rule(client, str(rule_id))

    def done() -> bool:
        with ctx.engine.connect() as conn:
            return not conn.execute(select(rules.c.enabled).where(rules.c.id == rule_id)).scalar_one()

    return done


def _ui_ack_alert(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    with ctx.engine.begin() as conn:
        alert_id = conn.execute(
            insert(alerts)
            .values(severity="warning", message="m", status="active", triggered_at=datetime.now(UTC))
            .returning(alerts.c.id)
        ).scalar_one()
    callbacks.acknowledge_alert(client, str(alert_id))

    def done() -> bool:
        with ctx.engine.connect() as conn:
            status = conn.execute(select(alerts.c.status).where(alerts.c.id == alert_id)).scalar_one()
        return bool(status == "acknowledged")

    return done


def _ui_save_config(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    device = ctx.fresh_device()
    callbacks.save_device_config(client, str(device.id), '{"rate": 7}')

    def done() -> bool:
        with ctx.engine.connect() as conn:
            config = conn.execute(select(devices.c.config).where(devices.c.id == device.id)).scalar_one()
        return bool(config == {"rate": 7})

    return done


def _ui_change_role(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    user_id = ctx.fresh_user()
    buttons = ("user-set-role", "user-disable", "user-enable", "user-reset")
    inputs: dict[str, Any] = {f"{b}.n_clicks": None for b in buttons} | {"user-set-role.n_clicks": 1}
    inputs["user-delete.submit_n_clicks"] = None
    state = {"users-grid.selectedRows": [{"id": str(user_id)}], "user-new-role.value": "operator"}
    outputs = ["user-result.children", "users-grid.rowData"]
    callbacks.fire(client, outputs, inputs, state, "user-set-role.n_clicks")

    def done() -> bool:
        with ctx.engine.connect() as conn:
            return conn.execute(select(users.c.role).where(users.c.id == user_id)).scalar_one() == "operator"

    return done


def _ui_create_token(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    name = f"matrix-{uuid.uuid4().hex[:8]}"
    callbacks.fire(
        client,
        ["token-create-result.children", "tokens-grid.rowData", "token-name.value"],
        {"token-create.n_clicks": 1},
        {"token-name.value": name, "token-scopes.value": ["devices:read"], "token-days.value": 5},
        "token-create.n_clicks",
    )

    def done() -> bool:
        with ctx.engine.connect() as conn:
            return (
                conn.execute(select(service_tokens.c.id).where(service_tokens.c.name == name)).first()
                is not None
            )

    return done


def _ui_replay(client: FlaskClient, ctx: Ctx) -> Callable[[], bool]:
    device = ctx.fresh_device()
    body = b'{"device_id": "%s", "telemetry": {"k": 1.5}}' % str(device.id).encode()
    with ctx.engine.begin() as conn:
        item = conn.execute(
            insert(quarantine)
            .values(source="http", device_id=str(device.id), reason="forged", payload=body)
            .returning(quarantine.c.id)
        ).scalar_one()
    callbacks.fire(
        client,
        ["q-result.children", "quarantine-grid.rowData"],
        {"q-replay.n_clicks": 1},
        {
            "quarantine-grid.selectedRows": [{"id": item}],
            "q-device.value": None,
            "q-reason.value": None,
            "q-replayed.value": False,
        },
        "q-replay.n_clicks",
    )

    def done() -> bool:
        with ctx.engine.connect() as conn:
            replayed = conn.execute(
                select(quarantine.c.replayed_at).where(quarantine.c.id == item)
            ).scalar_one()
        return replayed is not None

    return done


UI_WRITES: dict[str, tuple[str, Callable[[FlaskClient, Ctx], Callable[[], bool]]]] = {
    "disable a rule": ("rules:write", _ui_disable_rule),
    "acknowledge an alert": ("alerts:ack", _ui_ack_alert),
    "save a device's config": ("devices:write", _ui_save_config),
    "change a user's role": ("users:manage", _ui_change_role),
    "create a service token": ("users:manage", _ui_create_token),
    "replay quarantined items": ("quarantine:replay", _ui_replay),
}


@pytest.mark.parametrize("caller", [*USER_ROLES, "anonymous"])
def test_ui_write_callbacks_follow_the_matrix(
    app: Flask, caller: str, api_users: dict[str, ApiUser], api_device: ApiDevice
) -> None:
    ctx = Ctx(app, app.extensions[EXTENSION].engine, api_users, api_device, caller)
    failures = []
    for action, (permission, fire) in UI_WRITES.items():
        client = app.test_client()
        if caller != "anonymous":
            sign_in(app, client, api_users[caller].id)
        done = fire(client, ctx)
        should = caller != "anonymous" and allowed(caller, permission)
        if done() != should:
            failures.append(f"{caller} {action} [{permission}]: {'done' if done() else 'refused'}")
    assert failures == []
