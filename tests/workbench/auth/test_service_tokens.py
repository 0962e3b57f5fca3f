"""Service tokens: shown once, admins only; scopes decide every route; revocation and expiry end them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.workbench.api.fixtures import ApiDevice, ApiUser
from tests.workbench.api.test_route_matrix import RECIPES, Ctx, _generic_path, api_routes
from workbench.auth import service_tokens
from workbench.auth.guard import permission_of
from workbench.db.tables import service_tokens as tokens_table
from workbench.platform import EXTENSION, Platform

SCOPES = ["devices:read", "telemetry:read"]


def _issue(client: FlaskClient, headers: dict[str, str], **body: object) -> tuple[int, dict]:
    answer = client.post(
        "/api/v1/service-tokens", json={"name": "historian", "scopes": SCOPES, **body}, headers=headers
    )
    return answer.status_code, answer.get_json() or {}


def test_only_admins_issue_tokens_and_the_secret_is_shown_once(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    for role in ("engineer", "operator", "viewer", "device", "anonymous"):
        assert _issue(client, headers_for(role))[0] in (401, 403), role
    status, made = _issue(client, headers_for("admin"))
    assert status == 201 and made["token"].startswith("wbs_") and made["scopes"] == SCOPES
    assert made["expires_at"] > datetime.now(UTC).isoformat()
    listed = client.get("/api/v1/service-tokens", headers=headers_for("admin")).get_json()["items"]
    mine = next(item for item in listed if item["id"] == made["id"])
    assert "token" not in mine and mine["prefix"] == made["token"][:12] and mine["last_used"] is None
    engine = app.extensions[EXTENSION].engine
    with engine.connect() as conn:
        stored = conn.execute(
            select(tokens_table.c.token_hash).where(tokens_table.c.id == made["id"])
        ).scalar_one()
    assert made["token"] not in stored and len(stored) == 64
    used = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {made['token']}"})
    assert used.status_code == 200
    listed = client.get("/api/v1/service-tokens", headers=headers_for("admin")).get_json()["items"]
    assert next(item for item in listed if item["id"] == made["id"])["last_used"] is not None


def test_scopes_are_read_permissions_with_a_bounded_lifetime(
    client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    admin = headers_for("admin")
    assert _issue(client, admin, scopes=["devices:write"])[0] == 422
    assert _issue(client, admin, scopes=["users:manage"])[0] == 422
    assert _issue(client, admin, scopes=[])[0] == 422
    too_late = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    assert _issue(client, admin, expires_at=too_late)[0] == 422
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    assert _issue(client, admin, expires_at=past)[0] == 422


def test_every_route_follows_the_tokens_scopes(
    app: Flask,
    client: FlaskClient,
    headers_for: Callable[[str], dict[str, str]],
    api_users: dict[str, ApiUser],
    api_device: ApiDevice,
) -> None:
    _, made = _issue(client, headers_for("admin"))
    bearer = {"Authorization": f"Bearer {made['token']}"}
    ctx = Ctx(app, app.extensions[EXTENSION].engine, api_users, api_device, "viewer")
    failures, reached = [], 0
    for method, rule, view in api_routes(app):
        _, permission = permission_of(view)
        if permission is None:
            continue
        recipe = RECIPES.get((method, rule))
        path, kwargs = recipe(ctx) if recipe else (_generic_path(rule), {})
        if method in ("POST", "PUT", "PATCH") and "json" not in kwargs:
            kwargs["json"] = {}
        status = client.open(path, method=method, headers=bearer, **kwargs).status_code
        if permission in SCOPES:
            reached += status < 300
            ok = status not in (401, 403) and (not recipe or status < 300)
        else:
            ok = status == 403
        if not ok:
            failures.append(f"{method} {path} [{permission}]: {status}")
    assert failures == [] and reached >= 3


def test_revoked_and_expired_tokens_are_refused_at_once(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    _, made = _issue(client, headers_for("admin"))
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/devices", headers=bearer).status_code == 200
    assert (
        client.delete(f"/api/v1/service-tokens/{made['id']}", headers=headers_for("admin")).status_code == 204
    )
    refused = client.get("/api/v1/devices", headers=bearer)
    assert refused.status_code == 401 and "revoked" in refused.get_json()["error"]["message"]

    token_id, raw = service_tokens.create(
        platform.engine, "soon gone", ["alerts:read"], datetime.now(UTC) + timedelta(hours=1), None
    )
    assert client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    with platform.engine.begin() as conn:
        conn.execute(
            update(tokens_table)
            .where(tokens_table.c.id == token_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    forged = client.get("/api/v1/alerts", headers={"Authorization": "Bearer wbs_" + "x" * 43})
    assert forged.status_code == 401
