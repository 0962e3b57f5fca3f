"""The server enforces roles on UI actions: a viewer's forged Dash callback cannot acknowledge an alert."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import insert, select

from tests.workbench.api.fixtures import sign_in
from tests.workbench.live.serving import make_user
from workbench.auth.users import find_user
from workbench.db.tables import alerts
from workbench.platform import EXTENSION, Platform


def callback(client: object, alert_id: str) -> object:
    """POST the alerts page's acknowledge callback as a browser would."""
    body = {
        "output": "..alert-action-result.children...alerts-grid.rowTransaction..",
        "outputs": [
            {"id": "alert-action-result", "property": "children"},
            {"id": "alerts-grid", "property": "rowTransaction"},
        ],
        "inputs": [
            {"id": "alert-ack", "property": "n_clicks", "value": 1},
            {"id": "alert-resolve", "property": "n_clicks", "value": None},
        ],
        "changedPropIds": ["alert-ack.n_clicks"],
        "state": [
            {"id": "alerts-grid", "property": "selectedRows", "value": [{"id": alert_id}]},
            {"id": "alert-comment", "property": "value", "value": "forged"},
        ],
    }
    return client.post("/ui/_dash-update-component", json=body)  # type: ignore[attr-defined]


def test_viewer_cannot_acknowledge_through_a_forged_callback(app: Flask) -> None:
    platform: Platform = app.extensions[EXTENSION]
    with platform.engine.begin() as conn:
        alert_id = conn.execute(
            insert(alerts)
            .values(severity="warning", message="forged ack", status="active", triggered_at=datetime.now(UTC))
            .returning(alerts.c.id)
        ).scalar_one()
    anonymous = app.test_client()
    assert callback(anonymous, str(alert_id)).status_code == 401
    for role, expected in (("viewer", "active"), ("operator", "acknowledged")):
        email, _ = make_user(platform.engine, role)
        user = find_user(platform.engine, email)
        assert user is not None
        client = app.test_client()
        sign_in(app, client, user["id"])
        answer = callback(client, str(alert_id))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        with platform.engine.connect() as conn:
            status = conn.execute(select(alerts.c.status).where(alerts.c.id == alert_id)).scalar_one()
        assert status == expected, f"{role}: {answer.get_data(as_text=True)[:300]}"
        if role == "viewer":
            assert "lacks alerts:ack" in answer.get_data(as_text=True)
