"""Dashboard rules live once (``workbench.dashboards``): the UI and the API give the same answer per user."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.api.fixtures import USER_ROLES, ApiUser, user_token
from workbench.platform import EXTENSION, Platform
from workbench.ui import dashboards_db
from workbench.ui.session import UiUser

Headers = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def boards(client_module: FlaskClient, module_headers: Headers) -> dict[str, str]:
    """A private and a public dashboard of an operator and of an engineer."""
    made = {}
    for role in ("operator", "engineer"):
        for public in (False, True):
            body = {"name": f"{role} {'public' if public else 'private'}", "is_public": public}
            answer = client_module.post("/api/v1/dashboards", json=body, headers=module_headers(role))
            assert answer.status_code == 201, answer.get_json()
            made[body["name"]] = answer.get_json()["id"]
    return made


@pytest.fixture(scope="module")
def client_module(app: Flask) -> FlaskClient:
    """A test client shared by this module's tests."""
    return app.test_client()


@pytest.fixture(scope="module")
def module_headers(app: Flask, api_users: dict[str, ApiUser]) -> Headers:
    """Bearer headers of each role's fixture user."""
    return lambda role: {"Authorization": f"Bearer {user_token(app, api_users[role])}"}


@pytest.mark.parametrize("role", USER_ROLES)
def test_ui_and_api_see_and_edit_the_same_dashboards(
    app: Flask,
    client_module: FlaskClient,
    module_headers: Headers,
    api_users: dict[str, ApiUser],
    boards: dict[str, str],
    role: str,
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    engine = platform.engine
    user = api_users[role]
    ui_user = UiUser(user_id=str(user.id), role=role, email=user.email)
    listed = client_module.get("/api/v1/dashboards?page_size=500", headers=module_headers(role))
    assert listed.status_code == 200
    api_seen = {d["id"] for d in listed.get_json()["items"]} & set(boards.values())
    ui_seen = {str(d["id"]) for d in dashboards_db.list_for(engine, ui_user)} & set(boards.values())
    assert api_seen == ui_seen
    # The answer differs by role, so the comparison above has something to compare.
    expected = {"operator public", "engineer public"}
    if role in ("admin", "engineer"):
        expected = set(boards)
    elif role == "operator":
        expected |= {"operator private"}
    assert api_seen == {boards[name] for name in expected}
    for name, board in boards.items():
        shown = client_module.get(f"/api/v1/dashboards/{board}", headers=module_headers(role))
        assert (shown.status_code == 200) == (dashboards_db.load(engine, ui_user, board) is not None), name
        if shown.status_code != 200:
            continue
        changed = client_module.put(
            f"/api/v1/dashboards/{board}", json={"name": name}, headers=module_headers(role)
        )
        ui_may = dashboards_db.may_edit(ui_user, shown.get_json())
        assert changed.status_code == (200 if ui_may else 403), (role, name)
