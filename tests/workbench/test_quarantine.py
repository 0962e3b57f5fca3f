"""The quarantine service: filters, its permission checks and its refusals, as the API and the UI get them."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from flask import Flask
from sqlalchemy import insert

from workbench import quarantine
from workbench.auth.principal import Principal
from workbench.db.tables import quarantine as quarantine_table
from workbench.errors import ApiError
from workbench.platform import EXTENSION, Platform, Services


def _as(role: str) -> Principal:
    return Principal(kind="user", id=uuid.uuid4(), role=role)


def _platform(app: Flask) -> Platform:
    platform: Platform = app.extensions[EXTENSION]
    return platform


def test_filters_match_device_and_part_of_the_reason_literally(app: Flask) -> None:
    engine = _platform(app).engine
    device = f"dev-{uuid.uuid4().hex[:6]}"
    reasons = ["value of 'x' is 100% wrong", "value of 'x' is 100 wrong", "unknown device 'dev'"]
    with engine.begin() as conn:
        conn.execute(
            insert(quarantine_table),
            [{"source": "http", "device_id": device, "reason": r, "payload": b"{}"} for r in reasons],
        )
    found = quarantine.list_items(engine, _as("engineer"), device, "100%")
    assert [item["reason"] for item in found] == ["value of 'x' is 100% wrong"]
    assert len(quarantine.list_items(engine, _as("admin"), device, "VALUE OF")) == 2
    assert len(quarantine.list_items(engine, _as("admin"), device)) == 3
    held = {row["device_id"]: row["items"] for row in quarantine.devices_held(engine, _as("admin"))}
    assert held[device] == 3


def test_replay_refuses_roles_empty_selections_and_a_process_without_ingest(app: Flask) -> None:
    platform = _platform(app)
    for role, status in (("viewer", 403), ("operator", 403)):
        with pytest.raises(ApiError) as refused:
            quarantine.replay(platform, _as(role), [1])
        assert refused.value.status == status
    with pytest.raises(ApiError) as refused:
        quarantine.list_items(platform.engine, None)
    assert refused.value.status == 401
    with pytest.raises(ApiError) as refused:
        quarantine.replay(platform, _as("engineer"))
    assert (refused.value.status, refused.value.message) == (400, "name ids, a device_id, or all=true")
    alone = replace(platform, services=Services())
    with pytest.raises(ApiError) as refused:
        quarantine.replay(alone, _as("admin"), [1])
    assert refused.value.status == 503 and "ingest does not run in this process" in refused.value.message
