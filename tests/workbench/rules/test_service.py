"""The rules service: unique names over the API (409 naming the field), the same answer the Rules page
gets, and the migration that renames duplicates before its unique index."""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import insert, select, text

from tests.conftest import ROOT
from tests.workbench.rules.conftest import Rig
from workbench.db.tables import rules
from workbench.errors import ApiError
from workbench.platform import EXTENSION, Platform
from workbench.rules import service

Headers = dict[str, dict[str, str]]
MIGRATION = ROOT / "workbench" / "db" / "migrations" / "versions" / "0009_unique_rule_names.py"


def _migration() -> Any:
    spec = importlib.util.spec_from_file_location("migration_0009", MIGRATION)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rule(device: str, name: str) -> dict:
    return {
        "name": name,
        "type": "threshold",
        "target": {"device_id": device},
        "condition": {"key": "temperature", "operator": ">", "value": 80},
        "action": {"type": "alert", "severity": "warning"},
    }


def test_api_refuses_a_name_another_rule_has(client: FlaskClient, auth_headers: Headers, rig: Rig) -> None:
    [d] = rig.devices(1)
    engineer = auth_headers["engineer"]
    name = f"Boiler hot {uuid.uuid4().hex[:6]}"
    first = client.post("/api/v1/rules", json=_rule(d, name), headers=engineer)
    assert first.status_code == 201, first.json
    again = client.post("/api/v1/rules", json=_rule(d, f"  {name.upper()} "), headers=engineer)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "conflict"
    assert "rules need distinct names" in again.json["error"]["details"]["fields"]["name"][0]
    other = client.post("/api/v1/rules", json=_rule(d, name + " 2"), headers=engineer)
    assert other.status_code == 201
    renamed = client.put(f"/api/v1/rules/{other.json['id']}", json={"name": name}, headers=engineer)
    assert renamed.status_code == 409
    # A rule keeps its own name through an update; an invalid rule is refused for that first (422).
    kept = client.put(f"/api/v1/rules/{first.json['id']}", json={"name": name.lower()}, headers=engineer)
    assert kept.status_code == 200 and kept.json["name"] == name.lower()
    invalid = client.post("/api/v1/rules", json={**_rule(d, name), "condition": {}}, headers=engineer)
    assert invalid.status_code == 422


def test_the_page_and_the_api_get_the_same_answer(app: Flask, rig: Rig) -> None:
    platform: Platform = app.extensions[EXTENSION]
    [d] = rig.devices(1)
    name = f"Shared {uuid.uuid4().hex[:6]}"
    created = service.create_rule(platform, _rule(d, f" {name} "), None)
    assert created["name"] == name  # stored without the outer spaces
    with pytest.raises(ApiError) as refused:
        service.create_rule(platform, _rule(d, name.lower()), None)
    assert refused.value.status == 409
    assert service.message(refused.value).startswith(f"name: a rule named {name.lower()!r} exists")
    changed = service.set_enabled(platform, created["id"], False)
    assert changed["enabled"] is False


def test_unsent_keys_name_what_the_devices_do_send(app: Flask, rig: Rig) -> None:
    platform: Platform = app.extensions[EXTENSION]
    [d] = rig.devices(1)
    with platform.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO latest_values (device_id, key, timestamp, value)"
                " VALUES (:d, 'pressure', now(), 1)"
            ),
            {"d": d},
        )
    assert service.unsent_keys(platform, [d], ["pressure"]) == {}
    assert service.unsent_keys(platform, [d], ["presure"]) == {"presure": ["pressure"]}


def test_migration_renames_duplicates_before_the_unique_index(app: Flask) -> None:
    platform: Platform = app.extensions[EXTENSION]
    tag = uuid.uuid4().hex[:6]
    with platform.engine.connect() as conn, conn.begin() as transaction:
        conn.execute(text("DROP INDEX uq_rules_name"))  # as before 0009; rolled back below
        body = {"condition": {}, "action": {}}
        ids = [  # the oldest keeps its name
            conn.execute(
                insert(rules)
                .values(name=name, created_at=datetime(2026, 1, 1, n, tzinfo=UTC), **body)
                .returning(rules.c.id)
            ).scalar_one()
            for n, name in enumerate((f"Dup {tag}", f"dup {tag} ", f"DUP {tag}"))
        ]
        conn.execute(text(_migration().RENAME_DUPLICATES))
        conn.execute(text("CREATE UNIQUE INDEX uq_rules_name ON rules (lower(btrim(name)))"))
        names = dict(conn.execute(select(rules.c.id, rules.c.name).where(rules.c.id.in_(ids))).all())
        transaction.rollback()
    assert names[ids[0]] == f"Dup {tag}"
    assert names[ids[1]] == f"dup {tag} ({str(ids[1])[:8]})"
    assert names[ids[2]] == f"DUP {tag} ({str(ids[2])[:8]})"
