"""The user service: the last active admin stays admin whoever asks, and the UI and the API answer alike."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, update

from tests.workbench.api.fixtures import PASSWORD, ApiUser, sign_in
from tests.workbench.ui.callbacks import fire
from workbench.auth import users
from workbench.auth.principal import Principal
from workbench.db.tables import users as users_table
from workbench.errors import ApiError
from workbench.platform import EXTENSION

ACTIONS = ("user-set-role", "user-disable", "user-enable", "user-reset")


@contextmanager
def only_admins(engine: Engine, *keep: uuid.UUID) -> Iterator[None]:
    """Leave only the admins ``keep`` active for a while (the others are disabled meanwhile)."""
    with engine.begin() as conn:
        others = list(
            conn.execute(
                update(users_table)
                .where(
                    users_table.c.role == "admin",
                    users_table.c.disabled.is_(False),
                    users_table.c.id.not_in(keep),
                )
                .values(disabled=True)
                .returning(users_table.c.id)
            ).scalars()
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(update(users_table).where(users_table.c.id.in_(others)).values(disabled=False))


def _engine(app: Flask) -> Engine:
    engine: Engine = app.extensions[EXTENSION].engine
    return engine


def _admin(user_id: uuid.UUID) -> Principal:
    return Principal(kind="user", id=user_id, role="admin")


def _text(component: Any) -> str:
    """The text a Dash component tree shows."""
    if isinstance(component, dict):
        return _text(component.get("props", {}).get("children"))
    if isinstance(component, list):
        return "".join(_text(part) for part in component)
    return "" if component is None else str(component)


def ui_act(client: FlaskClient, action: str, user_id: uuid.UUID, role: str | None = None) -> Any:
    """Press a button of the users page with ``user_id`` selected; the response's two outputs."""
    inputs: dict[str, Any] = {f"{name}.n_clicks": None for name in ACTIONS}
    inputs["user-delete.submit_n_clicks"] = None
    pressed = "user-delete.submit_n_clicks" if action == "user-delete" else f"{action}.n_clicks"
    inputs[pressed] = 1
    state = {"users-grid.selectedRows": [{"id": str(user_id)}], "user-new-role.value": role}
    response = fire(client, ["user-result.children", "users-grid.rowData"], inputs, state, pressed)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    outputs = response.get_json()["response"]
    return _text(outputs["user-result"]["children"]), outputs.get("users-grid", {}).get("rowData")


def test_the_ui_and_the_api_give_the_same_answer_for_the_same_user(
    app: Flask, client: FlaskClient, headers_for: Any, api_users: dict[str, ApiUser]
) -> None:
    engine = _engine(app)
    target = users.create_user(engine, f"same-{uuid.uuid4().hex[:6]}@example.com", "viewer", PASSWORD)
    # An engineer: both refuse, in the same words.
    engineer_ui = app.test_client()
    sign_in(app, engineer_ui, api_users["engineer"].id)
    shown, rows = ui_act(engineer_ui, "user-set-role", target, "operator")
    api = client.patch(f"/api/v1/users/{target}", json={"role": "operator"}, headers=headers_for("engineer"))
    assert api.status_code == 403 and rows is None
    assert shown == api.get_json()["error"]["message"] == "role engineer lacks users:manage"
    # An admin: the UI's change is what the API then shows, row for row.
    admin_ui = app.test_client()
    sign_in(app, admin_ui, api_users["admin"].id)
    shown, rows = ui_act(admin_ui, "user-set-role", target, "operator")
    fetched = client.get(f"/api/v1/users/{target}", headers=headers_for("admin")).get_json()
    assert shown.endswith("is now operator.") and fetched["role"] == "operator"
    row = next(r for r in rows if r["id"] == str(target))
    assert (row["email"], row["role"], row["status"]) == (fetched["email"], "operator", "active")
    # The last active admin: the same refusal from both.
    with only_admins(engine, api_users["admin"].id):
        admin_id = api_users["admin"].id
        shown, _ = ui_act(admin_ui, "user-disable", admin_id)
        api = client.patch(f"/api/v1/users/{admin_id}", json={"disabled": True}, headers=headers_for("admin"))
        assert api.status_code == 409
        assert shown == api.get_json()["error"]["message"] == users.LAST_ADMIN.format(verb="disabled")
        deleted = client.delete(f"/api/v1/users/{admin_id}", headers=headers_for("admin"))
        assert deleted.get_json()["error"]["message"] == users.LAST_ADMIN.format(verb="removed")


def test_two_admins_demoting_each_other_at_once_leave_one_admin(app: Flask) -> None:
    engine = _engine(app)
    first = users.create_user(engine, f"a-{uuid.uuid4().hex[:6]}@example.com", "admin", PASSWORD)
    second = users.create_user(engine, f"b-{uuid.uuid4().hex[:6]}@example.com", "admin", PASSWORD)
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def demote(actor: uuid.UUID, target: uuid.UUID, name: str) -> None:
        start.wait()
        try:
            users.change_user(engine, _admin(actor), target, role="viewer")
            outcomes[name] = "done"
        except ApiError as error:
            outcomes[name] = f"{error.status} {error.message}"

    with only_admins(engine, first, second):
        threads = [
            threading.Thread(target=demote, args=(first, second, "first")),
            threading.Thread(target=demote, args=(second, first, "second")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes.values()) == ["409 " + users.LAST_ADMIN.format(verb="demoted"), "done"]
        assert users.has_admin(engine)


def test_an_admin_changes_others_but_not_themselves_and_bad_input_is_named(app: Flask) -> None:
    engine = _engine(app)
    me = users.create_user(engine, f"me-{uuid.uuid4().hex[:6]}@example.com", "admin", PASSWORD)
    other = users.create_user(engine, f"other-{uuid.uuid4().hex[:6]}@example.com", "admin", PASSWORD)
    changed = users.change_user(engine, _admin(me), other, disabled=True)
    assert changed["disabled"] is True
    for call, message in (
        (lambda: users.change_user(engine, _admin(me), me, role="viewer"), "admins cannot demote themselves"),
        (lambda: users.remove_user(engine, _admin(me), me), "admins cannot remove themselves"),
        (lambda: users.change_user(engine, _admin(me), other, role="king"), "role must be one of"),
        (lambda: users.add_user(engine, _admin(me), "not-an-email", "viewer"), "not an e-mail address"),
        (lambda: users.add_user(engine, _admin(me), "x@example.com", "viewer", "short"), "8 to 1024"),
        (lambda: users.get_user(engine, _admin(me), uuid.uuid4()), "not found"),
    ):
        try:
            call()
        except ApiError as error:
            assert message in error.message
        else:
            raise AssertionError(f"accepted: {message}")
    made, password = users.add_user(engine, _admin(me), f"inv-{uuid.uuid4().hex[:6]}@example.com", "viewer")
    assert password and users.check_login(engine, made["email"], password) is not None
