"""Access ends when it should: tokens and UI sessions die with the user's delete, disable, demotion,
password change and logout, and sessions time out (idle and absolute)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from tests.workbench.api.fixtures import PASSWORD, ApiUser
from tests.workbench.ui.callbacks import disable_rule
from workbench.auth.users import create_user
from workbench.db.tables import rules, user_sessions
from workbench.platform import EXTENSION, Platform


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def _new_admin(app: Flask) -> tuple[uuid.UUID, str]:
    email = f"victim-{uuid.uuid4().hex[:8]}@example.com"
    return create_user(_platform(app).engine, email, "admin", PASSWORD), email


def api_login(client: FlaskClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    """Tokens from the API login."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def ui_login(app: Flask, email: str, password: str = PASSWORD) -> FlaskClient:
    """A browser-like client signed in through the real form (its own address, so throttles stay apart)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["login_csrf"]
    form = {"email": email, "password": password, "csrf": csrf, "next": "/ui/"}
    assert client.post("/login", data=form).status_code == 302
    assert client.get("/ui/").status_code == 200
    return client


def _enabled_rule(app: Flask) -> uuid.UUID:
    with _platform(app).engine.begin() as conn:
        made: uuid.UUID = conn.execute(
            insert(rules)
            .values(
                name=f"guarded-{uuid.uuid4().hex[:6]}",
                type="threshold",
                condition={"key": "t", "operator": ">", "value": 1},
                action={"type": "alert"},
                enabled=True,
            )
            .returning(rules.c.id)
        ).scalar_one()
    return made


def _rule_enabled(app: Flask, rule_id: uuid.UUID) -> bool:
    with _platform(app).engine.connect() as conn:
        return bool(conn.execute(select(rules.c.enabled).where(rules.c.id == rule_id)).scalar_one())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CHANGES: dict[str, Callable[[FlaskClient, dict[str, str], uuid.UUID], Any]] = {
    "delete": lambda c, h, uid: c.delete(f"/api/v1/users/{uid}", headers=h),
    "disable": lambda c, h, uid: c.put(f"/api/v1/users/{uid}", headers=h, json={"disabled": True}),
    "demote": lambda c, h, uid: c.put(f"/api/v1/users/{uid}", headers=h, json={"role": "viewer"}),
    "password": lambda c, h, uid: c.put(f"/api/v1/users/{uid}", headers=h, json={"password": "n3w-passw0rd"}),
}


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_admin_loses_tokens_and_ui_session_at_once(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]], change: str
) -> None:
    victim_id, email = _new_admin(app)
    tokens = api_login(client, email)
    browser = ui_login(app, email)
    rule_id = _enabled_rule(app)
    new_admin = {"email": f"made-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD, "role": "admin"}
    assert client.get("/api/v1/users", headers=_bearer(tokens["access_token"])).status_code == 200

    assert CHANGES[change](client, headers_for("admin"), victim_id).status_code in (200, 204)

    # The access token no longer creates an admin (it did, with a 201, for its 15 minutes).
    made = client.post("/api/v1/users", headers=_bearer(tokens["access_token"]), json=new_admin)
    assert made.status_code == 401, made.get_json()
    # The refresh token no longer mints new tokens.
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401
    # The UI cookie no longer opens pages, nor fires a write callback through Dash's endpoint.
    assert browser.get("/ui/").status_code == 302
    forged = disable_rule(browser, str(rule_id))
    assert forged.status_code == 401, forged.get_data(as_text=True)[:200]
    assert _rule_enabled(app, rule_id)
    with _platform(app).engine.connect() as conn:
        left = conn.execute(select(user_sessions.c.id).where(user_sessions.c.user_id == victim_id)).all()
    assert left == []


def test_unchanged_fields_do_not_end_access(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    victim_id, email = _new_admin(app)
    tokens = api_login(client, email)
    browser = ui_login(app, email)
    same = {"role": "admin", "disabled": False}
    assert (
        client.put(f"/api/v1/users/{victim_id}", headers=headers_for("admin"), json=same).status_code == 200
    )
    assert client.get("/api/v1/users", headers=_bearer(tokens["access_token"])).status_code == 200
    assert browser.get("/ui/").status_code == 200


def test_the_new_password_and_a_new_login_work_after_a_change(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    victim_id, email = _new_admin(app)
    CHANGES["password"](client, headers_for("admin"), victim_id)
    fresh = api_login(client, email, "n3w-passw0rd")
    assert client.get("/api/v1/users", headers=_bearer(fresh["access_token"])).status_code == 200
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert again.status_code == 200
    assert ui_login(app, email, "n3w-passw0rd").get("/ui/").status_code == 200


def test_a_demoted_user_gets_the_new_role_after_logging_in_again(
    app: Flask, client: FlaskClient, headers_for: Callable[[str], dict[str, str]]
) -> None:
    victim_id, email = _new_admin(app)
    CHANGES["demote"](client, headers_for("admin"), victim_id)
    viewer = api_login(client, email)
    assert viewer["role"] == "viewer"
    assert client.get("/api/v1/users", headers=_bearer(viewer["access_token"])).status_code == 403


def test_a_copied_cookie_dies_with_logout(app: Flask) -> None:
    _, email = _new_admin(app)
    browser = ui_login(app, email)
    thief = app.test_client()
    cookie = browser.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    assert thief.get("/ui/").status_code == 200
    rule_id = _enabled_rule(app)
    browser.get("/logout")
    assert thief.get("/ui/").status_code == 302
    assert disable_rule(thief, str(rule_id)).status_code == 401
    assert _rule_enabled(app, rule_id)


def _session_row(app: Flask, user_id: uuid.UUID) -> str:
    with _platform(app).engine.connect() as conn:
        found: str = conn.execute(
            select(user_sessions.c.id).where(user_sessions.c.user_id == user_id)
        ).scalar_one()
    return found


def _age(app: Flask, session_id: str, **values: datetime) -> None:
    with _platform(app).engine.begin() as conn:
        conn.execute(update(user_sessions).where(user_sessions.c.id == session_id).values(**values))


def test_sessions_end_after_the_idle_timeout(app: Flask) -> None:
    settings = _platform(app).settings
    user_id, email = _new_admin(app)
    browser = ui_login(app, email)
    row = _session_row(app, user_id)
    idle = timedelta(seconds=settings.session_idle_timeout_s)
    _age(app, row, last_seen=datetime.now(UTC) - idle + timedelta(seconds=60))
    assert browser.get("/ui/").status_code == 200  # within the idle time, and the request counts as use
    with _platform(app).engine.connect() as conn:
        seen = conn.execute(select(user_sessions.c.last_seen).where(user_sessions.c.id == row)).scalar_one()
    assert datetime.now(UTC) - seen < timedelta(seconds=30)
    _age(app, row, last_seen=datetime.now(UTC) - idle - timedelta(seconds=1))
    assert browser.get("/ui/").status_code == 302


def test_timed_out_sessions_are_swept_at_the_next_sign_in(app: Flask) -> None:
    settings = _platform(app).settings
    user_id, email = _new_admin(app)
    ui_login(app, email)
    row = _session_row(app, user_id)
    _age(app, row, last_seen=datetime.now(UTC) - timedelta(seconds=settings.session_idle_timeout_s + 1))
    _, other = _new_admin(app)
    ui_login(app, other)
    with _platform(app).engine.connect() as conn:
        assert conn.execute(select(user_sessions.c.id).where(user_sessions.c.id == row)).first() is None


def test_sessions_end_after_the_absolute_timeout_however_active(app: Flask) -> None:
    settings = _platform(app).settings
    user_id, email = _new_admin(app)
    browser = ui_login(app, email)
    row = _session_row(app, user_id)
    absolute = timedelta(seconds=settings.session_absolute_timeout_s)
    _age(app, row, created_at=datetime.now(UTC) - absolute + timedelta(seconds=60))
    assert browser.get("/ui/").status_code == 200
    _age(app, row, created_at=datetime.now(UTC) - absolute - timedelta(seconds=1))
    assert browser.get("/ui/").status_code == 302


def test_tokens_without_the_epoch_claim_are_refused(app: Flask, client: FlaskClient, api_users: dict) -> None:  # type: ignore[type-arg]
    import jwt

    admin: ApiUser = api_users["admin"]
    now = datetime.now(UTC)
    claims = {"sub": str(admin.id), "role": "admin", "type": "access", "jti": uuid.uuid4().hex}
    old = jwt.encode({**claims, "iat": now, "exp": now + timedelta(minutes=5)}, app.config["SECRET_KEY"])
    assert client.get("/api/v1/users", headers=_bearer(old)).status_code == 401
