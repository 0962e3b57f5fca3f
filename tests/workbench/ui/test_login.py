"""The sign-in form: one password check whoever asks, the session cookie's flags, ProxyFix, Dash probes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import PASSWORD, sign_in
from workbench.auth import users as users_module
from workbench.auth.passwords import verify_password
from workbench.auth.users import create_user
from workbench.db.tables import users
from workbench.platform import EXTENSION, Platform


def _engine(app: Flask):  # type: ignore[no-untyped-def]
    platform: Platform = app.extensions[EXTENSION]
    return platform.engine


def _submit(client: FlaskClient, email: str, password: str) -> int:
    client.get("/login")
    with client.session_transaction() as session:
        csrf = session["login_csrf"]
    form = {"email": email, "password": password, "csrf": csrf, "next": "/ui/"}
    return client.post("/login", data=form).status_code


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The password hashes the login check verifies against, in order."""
    seen: list[str] = []

    def counting(password_hash: str, password: str) -> bool:
        seen.append(password_hash)
        return verify_password(password_hash, password)

    monkeypatch.setattr(users_module, "verify_password", counting)
    yield seen


def test_every_sign_in_costs_one_password_verification(app: Flask, verifications: list[str]) -> None:
    engine = _engine(app)
    known = f"known-{uuid.uuid4().hex[:6]}@example.com"
    create_user(engine, known, "viewer", PASSWORD)
    disabled = f"off-{uuid.uuid4().hex[:6]}@example.com"
    disabled_id = create_user(engine, disabled, "viewer", PASSWORD)
    with engine.begin() as conn:
        conn.execute(users.update().where(users.c.id == disabled_id).values(disabled=True))
    client = app.test_client()
    cases = [
        (f"ghost-{uuid.uuid4().hex[:6]}@example.com", "guess", 401),  # no such user: the dummy hash
        (known, "guess", 401),
        (disabled, PASSWORD, 401),  # right password, disabled: still one verification, same answer
        (known, PASSWORD, 302),
    ]
    for email, password, status in cases:
        verifications.clear()
        assert _submit(client, email, password) == status, email
        assert len(verifications) == 1, (email, verifications)
        assert verifications[0].startswith("$argon2id$")
    # The API takes the same path.
    verifications.clear()
    ghost = {"email": "nobody-at-all@example.com", "password": "guess"}
    assert client.post("/api/v1/auth/login", json=ghost).status_code == 401
    assert len(verifications) == 1 and verifications[0].startswith("$argon2id$")


def _cookie_header(client: FlaskClient, base_url: str, **headers: str) -> str:
    response = client.get("/login", base_url=base_url, headers=headers)
    cookie = response.headers.get("Set-Cookie", "")
    assert cookie.startswith("session="), cookie
    return cookie


def test_session_cookie_is_lax_httponly_and_secure_over_https(app: Flask) -> None:
    plain = _cookie_header(app.test_client(), "http://localhost")
    assert "SameSite=Lax" in plain and "HttpOnly" in plain and "Secure" not in plain
    secure = _cookie_header(app.test_client(), "https://localhost")
    assert "SameSite=Lax" in secure and "Secure" in secure
    # Without trusted proxies (the default) a forwarded scheme is not believed.
    forged = _cookie_header(app.test_client(), "http://localhost", **{"X-Forwarded-Proto": "https"})
    assert "Secure" not in forged


@pytest.fixture(scope="module")
def proxied_app(app: Flask) -> Flask:
    """The app as it runs behind one reverse proxy (WORKBENCH_TRUSTED_PROXIES=1)."""
    from app import create_app

    platform: Platform = app.extensions[EXTENSION]
    behind = create_app(replace(platform.settings, trusted_proxies=1))
    behind.config["TESTING"] = True
    return behind


def test_behind_a_trusted_proxy_https_and_client_addresses_are_believed(proxied_app: Flask) -> None:
    client = proxied_app.test_client()
    cookie = _cookie_header(client, "http://localhost", **{"X-Forwarded-Proto": "https"})
    assert "Secure" in cookie and "SameSite=Lax" in cookie
    # Five bad guesses from one client behind the proxy do not lock the account for another client.
    email = f"shared-{uuid.uuid4().hex[:6]}@example.com"
    create_user(_engine(proxied_app), email, "viewer", PASSWORD)

    def login(address: str, password: str) -> int:
        body = {"email": email, "password": password}
        headers = {"X-Forwarded-For": address}
        return client.post("/api/v1/auth/login", json=body, headers=headers).status_code

    assert [login("203.0.113.7", "guess") for _ in range(6)] == [401] * 5 + [429]
    assert login("198.51.100.9", PASSWORD) == 200


def test_dash_probes_get_client_errors(app: Flask, api_users: dict) -> None:  # type: ignore[type-arg]
    client = app.test_client()
    sign_in(app, client, api_users["viewer"].id)
    for path in (
        "/ui/_dash-component-suites/nope/x.js",
        "/ui/_dash-component-suites/dash/nope.js",
        "/ui/_dash-component-suites/dash/../../app.py",
        "/ui/_dash-component-suites/dash/deps/react@18.v3_0_0m1.js.map",
    ):
        assert client.get(path).status_code == 404, path
    for body in ({}, [], {"output": "nope.children", "inputs": [], "changedPropIds": []}, {"output": 3}):
        assert client.post("/ui/_dash-update-component", json=body).status_code == 400, body
    assert client.post("/ui/_dash-update-component", data="not json").status_code == 400
