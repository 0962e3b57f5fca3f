"""A device's own API key reads its config and its commands over HTTP, and nothing of another device."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from tests.workbench.live.serving import serve
from workbench.auth import api_keys
from workbench.platform import EXTENSION, Platform
from workbench.protocols import commands

REGISTERS = [{"key": "speed", "address": 4, "type": "uint16", "scale": 0.1, "writable": True}]


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    """The session app on a real HTTP server."""
    with serve(app) as url:
        yield url


def _device(base_url: str, engineer: dict[str, str]) -> dict[str, Any]:
    """A Modbus device made by an engineer over HTTP (its answer carries the device's key)."""
    body = {
        "name": f"pump-{uuid.uuid4().hex[:6]}",
        "type": "pump",
        "protocol": "modbus",
        "config": {"registers": REGISTERS, "password": "plc-secret"},
    }
    made = requests.post(f"{base_url}/api/v1/devices", json=body, headers=engineer, timeout=10)
    assert made.status_code == 201, made.text
    created: dict[str, Any] = made.json()
    return created


def _command(base_url: str, engineer: dict[str, str], device_id: str, value: int) -> dict[str, Any]:
    """A Modbus write, pending until ingest's dispatcher (not running here) delivers it."""
    sent = requests.post(
        f"{base_url}/api/v1/devices/{device_id}/command",
        json={"command": "write", "params": {"key": "speed", "value": value}},
        headers=engineer,
        timeout=10,
    )
    assert sent.status_code == 202, sent.text
    issued: dict[str, Any] = sent.json()
    assert issued["status"] == "pending"
    return issued


def test_a_device_key_reads_its_own_config_and_pending_commands_only(
    app: Flask, base_url: str, headers_for: Callable[[str], dict[str, str]]
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    engineer = headers_for("engineer")
    mine, other = _device(base_url, engineer), _device(base_url, engineer)
    waiting = _command(base_url, engineer, mine["id"], 150)
    done = _command(base_url, engineer, mine["id"], 120)
    commands.finish(platform.engine, uuid.UUID(done["id"]), "acknowledged", result={"written": True})
    theirs = _command(base_url, engineer, other["id"], 90)
    key = {"X-API-Key": mine["api_key"]}

    def get(path: str, headers: dict[str, str] = key) -> requests.Response:
        return requests.get(f"{base_url}/api/v1/devices{path}", headers=headers, timeout=10)

    own = get(f"/{mine['id']}")
    assert own.status_code == 200, own.text
    assert own.json()["config"]["registers"] == REGISTERS
    assert own.json()["config"]["password"] == {"set": True}  # the secret is never read back
    pending = get(f"/{mine['id']}/commands?status=pending")
    assert pending.status_code == 200, pending.text
    assert [(c["id"], c["params"]["words"]) for c in pending.json()["items"]] == [(waiting["id"], [1500])]
    every = get(f"/{mine['id']}/commands").json()["items"]
    assert {c["id"]: c["status"] for c in every} == {waiting["id"]: "pending", done["id"]: "acknowledged"}
    assert get(f"/{mine['id']}/commands/{done['id']}").json()["result"] == {"written": True}
    assert [d["id"] for d in get("").json()["items"]] == [mine["id"]]
    assert get(f"/{mine['id']}/status").status_code == 200

    bad = get(f"/{mine['id']}/commands?status=sleeping")
    assert bad.status_code == 422 and "status" in bad.text

    # Nothing of another device, not even whether its commands exist.
    for path in (
        f"/{other['id']}",
        f"/{other['id']}/status",
        f"/{other['id']}/commands",
        f"/{other['id']}/commands?status=pending",
        f"/{other['id']}/commands/{theirs['id']}",
        f"/{mine['id']}/commands/{theirs['id']}",
    ):
        refused = get(path)
        assert refused.status_code == 404, (path, refused.text)
        assert refused.json()["error"]["code"] == "not_found"
        assert other["name"] not in refused.text and "words" not in refused.text

    # Reading is all it gained: the device still changes nothing about itself.
    assert (
        requests.put(
            f"{base_url}/api/v1/devices/{mine['id']}", json={"name": "renamed"}, headers=key, timeout=10
        ).status_code
        == 403
    )
    assert (
        requests.post(
            f"{base_url}/api/v1/devices/{mine['id']}/command",
            json={"command": "write", "params": {"key": "speed", "value": 1}},
            headers=key,
            timeout=10,
        ).status_code
        == 403
    )
    assert (
        requests.post(
            f"{base_url}/api/v1/devices/{mine['id']}/config", json={"config": {}}, headers=key, timeout=10
        ).status_code
        == 403
    )


def test_a_key_without_read_and_a_revoked_key_read_nothing(
    app: Flask, base_url: str, headers_for: Callable[[str], dict[str, str]]
) -> None:
    platform: Platform = app.extensions[EXTENSION]
    mine = _device(base_url, headers_for("engineer"))
    device_id = uuid.UUID(mine["id"])
    _, write_only = api_keys.create_key(
        platform.engine, device_id, "write only", permissions={"read": False, "write": True}
    )
    url = f"{base_url}/api/v1/devices/{device_id}/commands?status=pending"
    refused = requests.get(url, headers={"X-API-Key": write_only}, timeout=10)
    assert refused.status_code == 403 and "permissions" in refused.json()["error"]["message"]
    assert requests.get(url, headers={"X-API-Key": mine["api_key"]}, timeout=10).status_code == 200
    api_keys.revoke_key(platform.engine, uuid.UUID(mine["api_key_id"]))
    assert requests.get(url, headers={"X-API-Key": mine["api_key"]}, timeout=10).status_code == 401
