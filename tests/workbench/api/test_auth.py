"""Login, refresh with rotation, logout revoking in the database, admin-only register, the login throttle."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import PASSWORD, ApiUser
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.platform import EXTENSION


def _login(client: FlaskClient, email: str, password: str = PASSWORD) -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.get_json()
    body: dict = response.get_json()  # type: ignore[type-arg]
    return body


def test_login_gives_access_and_refresh_tokens(app: Flask, client: FlaskClient, api_users: dict) -> None:  # type: ignore[type-arg]
    user: ApiUser = api_users["operator"]
    body = _login(client, user.email.upper())
    claims = tokens.decode(app.config["SECRET_KEY"], body["access_token"])
    assert claims["sub"] == str(user.id) and claims["role"] == "operator"
    assert body["expires_in"] == 900 and body["token_type"] == "Bearer"
    refresh = tokens.decode(app.config["SECRET_KEY"], body["refresh_token"], kind="refresh")
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    me = client.get("/api/v1/devices", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


def test_wrong_password_is_401_in_house_format(client: FlaskClient, api_users: dict) -> None:  # type: ignore[type-arg]
    wrong = {"email": api_users["viewer"].email, "password": "nope"}
    response = client.post("/api/v1/auth/login", json=wrong)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    unknown = client.post("/api/v1/auth/login", json={"email": "ghost@example.com", "password": "nope"})
    assert unknown.status_code == 401
    assert unknown.get_json()["error"]["message"] == response.get_json()["error"]["message"]


def test_refresh_rotates_and_the_old_refresh_token_dies(client: FlaskClient, api_users: dict) -> None:  # type: ignore[type-arg]
    body = _login(client, api_users["viewer"].email)
    fresh = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert fresh.status_code == 200 and fresh.get_json()["access_token"] != body["access_token"]
    again = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert again.status_code == 401 and "revoked" in again.get_json()["error"]["message"]
    wrong_kind = client.post("/api/v1/auth/refresh", json={"refresh_token": body["access_token"]})
    assert wrong_kind.status_code == 401


def test_logout_revokes_in_the_database(app: Flask, client: FlaskClient, api_users: dict) -> None:  # type: ignore[type-arg]
    body = _login(client, api_users["engineer"].email)
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    out = client.post("/api/v1/auth/logout", json={"refresh_token": body["refresh_token"]}, headers=bearer)
    assert out.status_code == 204
    assert client.get("/api/v1/devices", headers=bearer).status_code == 401
    refreshed = client.post("/api/v1/auth/refresh", json={"refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 401
    # A new app on the same database (a restart) still refuses the revoked token.
    from app import create_app

    restarted = create_app(app.extensions[EXTENSION].settings).test_client()
    assert restarted.get("/api/v1/devices", headers=bearer).status_code == 401
    assert client.post("/api/v1/auth/logout", json={}).status_code == 401


def test_register_is_admin_only(client: FlaskClient, headers_for: Callable[[str], dict[str, str]]) -> None:
    email = f"new-{uuid.uuid4().hex[:6]}@example.com"
    body = {"email": email, "password": "long enough pw", "role": "viewer"}
    assert client.post("/api/v1/auth/register", json=body).status_code == 401
    assert client.post("/api/v1/auth/register", json=body, headers=headers_for("engineer")).status_code == 403
    made = client.post("/api/v1/auth/register", json=body, headers=headers_for("admin"))
    assert made.status_code == 201 and made.get_json()["role"] == "viewer"
    assert "password" not in made.get_json() and "password_hash" not in made.get_json()
    _login(client, body["email"], body["password"])
    dup = client.post("/api/v1/auth/register", json=body, headers=headers_for("admin"))
    assert dup.status_code == 409


def test_failed_logins_are_throttled_per_email(app: Flask, client: FlaskClient) -> None:
    email = f"target-{uuid.uuid4().hex[:6]}@example.com"
    create_user(app.extensions[EXTENSION].engine, email, "viewer", PASSWORD)
    statuses = [
        client.post("/api/v1/auth/login", json={"email": email, "password": "guess"}).status_code
        for _ in range(6)
    ]
    assert statuses[:5] == [401] * 5 and statuses[5] == 429
    blocked = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert blocked.get_json()["error"]["code"] == "too_many_requests"
    # Another account from the same address is not locked out by it.
    other = client.post("/api/v1/auth/login", json={"email": "someone@example.com", "password": "x"})
    assert other.status_code == 401


def test_sign_in_form_shares_the_login_throttle(app: Flask, client: FlaskClient) -> None:
    email = f"form-{uuid.uuid4().hex[:6]}@example.com"
    create_user(app.extensions[EXTENSION].engine, email, "operator", PASSWORD)

    def sign_in(password: str) -> tuple[int, str]:
        client.get("/login")
        with client.session_transaction() as session:
            csrf = session["login_csrf"]
        form = {"email": email, "password": password, "csrf": csrf, "next": "/ui/"}
        response = client.post("/login", data=form)
        return response.status_code, response.get_data(as_text=True)

    for _ in range(3):
        assert sign_in("guess")[0] == 401
    for _ in range(2):  # the API and the form count together
        assert client.post("/api/v1/auth/login", json={"email": email, "password": "x"}).status_code == 401
    status, page = sign_in(PASSWORD)
    assert status == 429 and "Too many failed sign-ins" in page
    with client.session_transaction() as session:
        assert "sid" not in session  # the right password did not get through either
    assert client.get("/ui/").status_code == 302


def test_each_app_keeps_its_own_rate_limit_storage(app: Flask, client: FlaskClient, settings) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from app import create_app
    from tests.conftest import free_port

    # A second app whose Redis is gone must not take the first app's limits down with it.
    create_app(replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    response = client.post("/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x"})
    assert response.status_code == 401


def _from(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_failed_logins_are_throttled_per_account_across_addresses(app: Flask) -> None:
    email = f"spread-{uuid.uuid4().hex[:6]}@example.com"
    create_user(app.extensions[EXTENSION].engine, email, "viewer", PASSWORD)
    wrong = {"email": email, "password": "guess"}
    # Ten guessers, one guess each from its own address: each under its own limit, together over.
    statuses = [
        _from(app, f"192.0.2.{i}").post("/api/v1/auth/login", json=wrong).status_code for i in range(11)
    ]
    assert statuses == [401] * 10 + [429]
    assert _from(app, "192.0.2.200").post("/api/v1/auth/login", json=wrong).status_code == 429


def test_password_spraying_from_one_address_is_throttled(app: Flask) -> None:
    engine = app.extensions[EXTENSION].engine
    emails = [f"spray{i}-{uuid.uuid4().hex[:6]}@example.com" for i in range(8)]
    for email in emails[:2]:
        create_user(engine, email, "viewer", PASSWORD)
    sprayer = _from(app, "198.18.0.1")
    # 24 tries over 8 accounts: three per account, never five on one, yet twenty failures from one address.
    statuses = [
        sprayer.post("/api/v1/auth/login", json={"email": email, "password": f"guess{n}"}).status_code
        for n in range(3)
        for email in emails
    ]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    # The address stays throttled even with a right password; the account is not locked elsewhere.
    assert (
        sprayer.post("/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD}).status_code == 429
    )
    elsewhere = _from(app, "198.18.0.2").post(
        "/api/v1/auth/login", json={"email": emails[0], "password": PASSWORD}
    )
    assert elsewhere.status_code == 200
