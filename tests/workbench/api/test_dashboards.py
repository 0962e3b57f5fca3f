"""Dashboards: private to their owner, public ones readable by every user; owners or curators edit."""

from __future__ import annotations

from collections.abc import Callable

from flask.testing import FlaskClient

Headers = Callable[[str], dict[str, str]]


def _make(client: FlaskClient, headers: Headers, role: str, **fields: object) -> str:
    body = {"name": f"{role} board", "widgets": [{"type": "gauge", "key": "temp"}], **fields}
    response = client.post("/api/v1/dashboards", json=body, headers=headers(role))
    assert response.status_code == 201, response.get_json()
    dashboard_id: str = response.get_json()["id"]
    return dashboard_id


def test_private_and_public_visibility(client: FlaskClient, headers_for: Headers) -> None:
    private = _make(client, headers_for, "operator")
    public = _make(client, headers_for, "operator", is_public=True)
    viewer = headers_for("viewer")
    assert client.get(f"/api/v1/dashboards/{private}", headers=viewer).status_code == 404
    shown = client.get(f"/api/v1/dashboards/{public}", headers=viewer)
    assert shown.status_code == 200 and shown.get_json()["widgets"][0]["type"] == "gauge"
    listed = {
        d["id"] for d in client.get("/api/v1/dashboards?page_size=500", headers=viewer).get_json()["items"]
    }
    assert public in listed and private not in listed
    assert client.get(f"/api/v1/dashboards/{private}", headers=headers_for("engineer")).status_code == 200
    mine = client.get(
        "/api/v1/dashboards?mine=true&page_size=500", headers=headers_for("operator")
    ).get_json()
    assert {private, public} <= {d["id"] for d in mine["items"]}


def test_only_owner_or_curators_edit(client: FlaskClient, headers_for: Headers) -> None:
    board = _make(client, headers_for, "engineer", is_public=True)
    url = f"/api/v1/dashboards/{board}"
    assert client.put(url, json={"name": "mine now"}, headers=headers_for("operator")).status_code == 403
    assert client.put(url, json={"name": "x"}, headers=headers_for("viewer")).status_code == 403
    renamed = client.put(url, json={"name": "renamed"}, headers=headers_for("admin"))
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "renamed"
    own = _make(client, headers_for, "operator")
    assert (
        client.put(
            f"/api/v1/dashboards/{own}", json={"is_public": True}, headers=headers_for("operator")
        ).status_code
        == 200
    )
    assert client.delete(url, headers=headers_for("operator")).status_code == 403
    assert client.delete(url, headers=headers_for("engineer")).status_code == 204
    assert client.get(url, headers=headers_for("admin")).status_code == 404


def test_bad_bodies_name_the_field(client: FlaskClient, headers_for: Headers) -> None:
    response = client.post(
        "/api/v1/dashboards", json={"name": "", "colour": "red"}, headers=headers_for("admin")
    )
    assert response.status_code == 422
    assert set(response.get_json()["error"]["details"]["fields"]["json"]) == {"name", "colour"}
    not_json = client.post(
        "/api/v1/dashboards", data="{oops", content_type="application/json", headers=headers_for("admin")
    )
    assert not_json.status_code in (400, 422) and "error" in not_json.get_json()
