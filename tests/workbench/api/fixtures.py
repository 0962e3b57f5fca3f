"""Shared auth fixtures for every API test: a user of each role, their headers, a device with its key.

Loaded for the whole suite through ``pytest_plugins`` in ``tests/conftest.py``. Use:

- ``api_users``: ``{role: ApiUser}`` for admin, engineer, operator, viewer (session-scoped, in the DB).
- ``api_device`` / ``other_api_device``: a device and its raw API key (session-scoped).
- ``auth_headers``: ``{role: headers}`` for every role, ``"device"`` (X-API-Key of ``api_device``)
  and ``"anonymous"`` (no headers). Tokens are issued fresh per test (they live 15 minutes).
- ``headers_for(role)``: the same as a function, when a parametrized test picks the role.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select

from workbench.auth import access, api_keys, tokens
from workbench.auth.guard import SESSION_KEY
from workbench.auth.users import create_user
from workbench.db.tables import devices, users
from workbench.platform import EXTENSION, Platform

USER_ROLES = ("admin", "engineer", "operator", "viewer")
ALL_CALLERS = (*USER_ROLES, "device", "anonymous")
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class ApiUser:
    """A user created for the test session (``password`` is :data:`PASSWORD`)."""

    id: uuid.UUID
    email: str
    role: str
    password: str = PASSWORD


@dataclass(frozen=True)
class ApiDevice:
    """A device with one API key (raw key kept for tests; its rate limit is high so tests never hit it)."""

    id: uuid.UUID
    name: str
    key_id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        """Headers authenticating as this device."""
        return {"X-API-Key": self.api_key}


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def make_device(app: Flask, name: str, rate_limit: int = 1_000_000) -> ApiDevice:
    """Insert a device and a key for it; returns both (use in tests that need their own device)."""
    engine = _platform(app).engine
    with engine.begin() as conn:
        device_id = conn.execute(
            insert(devices)
            .values(name=name, type="sensor", area="test-area", protocol="mqtt")
            .returning(devices.c.id)
        ).scalar_one()
    key_id, raw = api_keys.create_key(engine, device_id, f"{name} key", rate_limit=rate_limit)
    return ApiDevice(id=device_id, name=name, key_id=key_id, api_key=raw)


@pytest.fixture(autouse=True)
def _fresh_login_throttles(request: pytest.FixtureRequest) -> None:
    """Each test that uses the session's app starts with no failed logins counted against 127.0.0.1."""
    if "app" in request.fixturenames:
        from workbench.api.protection import LIMITER

        request.getfixturevalue("app").extensions[LIMITER].reset()


@pytest.fixture(scope="session")
def api_users(app: Flask) -> dict[str, ApiUser]:
    """One user per role (admin, engineer, operator, viewer) in the session database."""
    engine = _platform(app).engine
    tag = uuid.uuid4().hex[:8]
    made = {}
    for role in USER_ROLES:
        email = f"{role}-{tag}@example.com"
        made[role] = ApiUser(id=create_user(engine, email, role, PASSWORD), email=email, role=role)
    return made


@pytest.fixture(scope="session")
def api_device(app: Flask) -> ApiDevice:
    """A device with its own API key."""
    return make_device(app, f"fixture-device-{uuid.uuid4().hex[:6]}")


@pytest.fixture(scope="session")
def other_api_device(app: Flask) -> ApiDevice:
    """A second device, to check a device key never reaches another device's data."""
    return make_device(app, f"fixture-other-{uuid.uuid4().hex[:6]}")


def user_token(app: Flask, user: ApiUser) -> str:
    """A fresh access token for ``user``."""
    return tokens.issue(app.config["SECRET_KEY"], user.id, user.role, user.email)


def sign_in(app: Flask, client: FlaskClient, user_id: uuid.UUID) -> str:
    """Open a UI session for the user on ``client`` as the login form would; returns the session id."""
    engine = _platform(app).engine
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.id == user_id)).one()
    user = access.ActiveUser(row.id, row.email, row.role, row.token_version)
    raw = access.start_session(engine, user)
    with client.session_transaction() as session:
        session.clear()
        session[SESSION_KEY] = raw
    return raw


@pytest.fixture
def headers_for(
    app: Flask, api_users: dict[str, ApiUser], api_device: ApiDevice
) -> Callable[[str], dict[str, str]]:
    """``headers_for(role)``: request headers for a role, ``"device"`` or ``"anonymous"``."""

    def build(role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        if role == "device":
            return api_device.headers
        return {"Authorization": f"Bearer {user_token(app, api_users[role])}"}

    return build


@pytest.fixture
def auth_headers(headers_for: Callable[[str], dict[str, str]]) -> dict[str, dict[str, str]]:
    """``{role: headers}`` for every caller in :data:`ALL_CALLERS`."""
    return {role: headers_for(role) for role in ALL_CALLERS}
