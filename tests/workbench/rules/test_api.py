"""``/api/v1/rules`` and ``/api/v1/alerts``: roles, validation naming fields, CRUD, backtest, ack/resolve."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.workbench.rules.conftest import T0, Rig, alerts_of
from workbench.db.tables import alerts
from workbench.platform import EXTENSION, Platform

Headers = dict[str, dict[str, str]]


def _rule(device: str) -> dict:
    return {
        "name": f"hot boiler {uuid.uuid4().hex[:6]}",  # rule names are unique
        "type": "threshold",
        "target": {"device_id": device},
        "condition": {"key": "temperature", "operator": ">", "value": 80, "duration_seconds": 60},
        "action": {"type": "alert", "severity": "critical", "message": "{device}: {value} > {threshold}"},
        "cooldown_seconds": 0,
    }


def test_rules_crud_with_roles_and_field_errors(client: FlaskClient, auth_headers: Headers, rig: Rig) -> None:
    [d] = rig.devices(1)
    assert client.post("/api/v1/rules", json=_rule(d), headers=auth_headers["operator"]).status_code == 403
    assert client.get("/api/v1/rules", headers=auth_headers["viewer"]).status_code == 403
    bad = {**_rule(d), "condition": {"key": "temperature", "operator": ">"}, "action": {"type": "webhook"}}
    answer = client.post("/api/v1/rules", json=bad, headers=auth_headers["engineer"])
    assert answer.status_code == 422
    assert set(answer.json["error"]["details"]["fields"]) == {"condition.value", "action.url"}
    created = client.post("/api/v1/rules", json=_rule(d), headers=auth_headers["engineer"])
    assert created.status_code == 201, created.json
    rule_id = created.json["id"]
    assert created.json["trigger_count"] == 0 and created.json["enabled"] is True
    assert (
        client.get(f"/api/v1/rules/{rule_id}", headers=auth_headers["operator"]).json["name"]
        == (created.json["name"])
    )
    listed = client.get("/api/v1/rules?type=threshold&page_size=500", headers=auth_headers["operator"]).json
    assert rule_id in [r["id"] for r in listed["items"]]
    changed = client.put(
        f"/api/v1/rules/{rule_id}",
        json={"condition": {"key": "temperature", "operator": ">", "value": 90}},
        headers=auth_headers["engineer"],
    )
    assert changed.status_code == 200 and changed.json["condition"]["value"] == 90
    wrong = client.put(
        f"/api/v1/rules/{rule_id}", json={"type": "statistical"}, headers=auth_headers["engineer"]
    )
    assert wrong.status_code == 422 and "condition.function" in wrong.json["error"]["details"]["fields"]
    types = client.get("/api/v1/rules/types", headers=auth_headers["operator"]).json
    assert {"threshold", "comparison", "statistical", "schedule"} <= set(types["types"])
    assert types["actions"]["webhook"]["required"] == ["url"]
    assert client.delete(f"/api/v1/rules/{rule_id}", headers=auth_headers["engineer"]).status_code == 204
    assert client.get(f"/api/v1/rules/{rule_id}", headers=auth_headers["engineer"]).status_code == 404


def test_backtest_returns_would_be_alerts_without_raising(
    app: Flask, client: FlaskClient, auth_headers: Headers, rig: Rig
) -> None:
    [d] = rig.devices(1)
    engine = app.extensions[EXTENSION].engine
    # 0-50 s normal, 60-180 s hot (fires at 120 s: held 60 s), 190 s normal again, 300-330 s hot (too short).
    series = [(s, 70.0) for s in range(0, 60, 10)] + [(s, 85.0) for s in range(60, 190, 10)]
    series += [(190, 70.0), (300, 95.0), (330, 95.0), (340, 60.0)]
    rig.store(d, "temperature", series)
    rule_id = client.post("/api/v1/rules", json=_rule(d), headers=auth_headers["engineer"]).json["id"]
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    answer = client.post(f"/api/v1/rules/{rule_id}/test", json=window, headers=auth_headers["operator"])
    assert answer.status_code == 200, answer.json
    result = answer.json
    assert result["points"] == len(series)
    [alert] = result["alerts"]
    assert alert["triggered_at"].startswith("2026-01-05T08:02:00")  # 60 s + 60 s held
    assert alert["resolved_at"].startswith("2026-01-05T08:03:10")
    assert (alert["value"], alert["threshold"], alert["severity"]) == (85.0, 80.0, "critical")
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(alerts).where(alerts.c.rule_id == uuid.UUID(rule_id))
        )
        assert stored.scalar_one() == 0
    backwards = {"start": window["end"], "end": window["start"]}
    assert (
        client.post(
            f"/api/v1/rules/{rule_id}/test", json=backwards, headers=auth_headers["operator"]
        ).status_code
        == 400
    )


def test_alerts_list_ack_resolve(
    app: Flask,
    client: FlaskClient,
    auth_headers: Headers,
    api_users: dict,
    rig: Rig,
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    [d] = rig.devices(1)
    rule = rig.rule("threshold", {"key": "x", "operator": ">", "value": 1})
    rig.alert(rule, d, severity="critical")
    updates: list[dict] = []
    platform.bus.subscribe("alert.update", lambda topic, payload: updates.append(payload))
    page = client.get(
        f"/api/v1/alerts?device_id={d}&status=open&severity=critical", headers=auth_headers["viewer"]
    ).json
    assert page["total"] == 1
    alert_id = page["items"][0]["id"]
    assert (
        client.get(f"/api/v1/alerts?device_id={d}&severity=info", headers=auth_headers["viewer"]).json[
            "total"
        ]
        == 0
    )
    later = (T0 + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert (
        client.get(f"/api/v1/alerts?device_id={d}&start={later}", headers=auth_headers["viewer"]).json[
            "total"
        ]
        == 0
    )
    assert (
        client.put(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=auth_headers["viewer"]).status_code
        == 403
    )
    acked = client.put(
        f"/api/v1/alerts/{alert_id}/ack", json={"comment": "on it"}, headers=auth_headers["operator"]
    )
    assert acked.status_code == 200
    body = acked.json
    assert body["status"] == "acknowledged" and body["ack_comment"] == "on it"
    assert body["acknowledged_by"] == str(api_users["operator"].id) and body["acknowledged_at"]
    assert (
        client.put(f"/api/v1/alerts/{alert_id}/ack", json={}, headers=auth_headers["operator"]).status_code
        == 409
    )
    done = client.put(
        f"/api/v1/alerts/{alert_id}/resolve",
        json={"comment": "valve replaced"},
        headers=auth_headers["operator"],
    )
    assert done.json["status"] == "resolved" and done.json["resolve_comment"] == "valve replaced"
    assert [u["status"] for u in updates if u["id"] == alert_id] == ["acknowledged", "resolved"]
    assert (
        client.get(f"/api/v1/alerts/{alert_id}", headers=auth_headers["viewer"]).json["status"] == "resolved"
    )
    assert client.get(f"/api/v1/alerts/{uuid.uuid4()}", headers=auth_headers["viewer"]).status_code == 404
    assert alerts_of(platform, rule)[0]["resolved_by"] == api_users["operator"].id


def test_target_device_id_reads_back_as_device_id(
    client: FlaskClient, auth_headers: Headers, rig: Rig
) -> None:
    d, e = rig.devices(2)
    engineer = auth_headers["engineer"]
    created = client.post("/api/v1/rules", json=_rule(d), headers=engineer)
    assert created.status_code == 201 and created.json["device_id"] == d
    rule_id = created.json["id"]
    assert client.get(f"/api/v1/rules/{rule_id}", headers=engineer).json["device_id"] == d
    moved = client.put(f"/api/v1/rules/{rule_id}", json={"target": {"device_id": e}}, headers=engineer)
    assert moved.status_code == 200 and moved.json["device_id"] == e
    widened = client.put(f"/api/v1/rules/{rule_id}", json={"target": {"area": "north"}}, headers=engineer)
    assert widened.status_code == 200 and widened.json["device_id"] is None
    clash = client.post("/api/v1/rules", json={**_rule(d), "device_id": e}, headers=engineer)
    assert clash.status_code == 422 and "device_id" in clash.json["error"]["details"]["fields"]
