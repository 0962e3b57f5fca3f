"""A service token opens a Socket.IO connection limited to its scopes; revoking it ends the connection."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import socketio

from tests.workbench.live.test_socket import Listener, batch
from workbench.auth import service_tokens
from workbench.live.bus import TELEMETRY_BATCH
from workbench.platform import Platform


@pytest.fixture
def listener() -> Any:
    made = Listener()
    yield made
    made.client.disconnect()


def test_service_token_subscribes_within_its_scopes_until_revoked(
    base_url: str, platform: Platform, listener: Listener
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    token_id, raw = service_tokens.create(platform.engine, "historian", ["devices:read"], expires, None)
    listener.connect(base_url, auth={"token": raw})
    assert listener.call("subscribe", {"type": "devices"})["ok"]
    refused = listener.call("subscribe", {"type": "alerts"})
    assert not refused["ok"] and "alerts:read" in refused["error"]

    service_tokens.revoke(platform.engine, token_id)
    assert platform.services.live.drop_ended_users() == 1
    deadline = time.monotonic() + 5
    while listener.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not listener.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener().connect(base_url, auth={"token": raw})


def test_service_token_receives_the_telemetry_it_may_read_until_it_expires(
    base_url: str, platform: Platform, listener: Listener
) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=3)
    _, raw = service_tokens.create(platform.engine, "historian", ["telemetry:read"], expires, None)
    listener.connect(base_url, auth={"token": raw})
    device = str(uuid.uuid4())
    assert listener.call("subscribe", {"type": "device", "device_id": device})["ok"]
    refused = listener.call("subscribe", {"type": "devices"})
    assert not refused["ok"] and "devices:read" in refused["error"]
    platform.bus.publish(TELEMETRY_BATCH, batch((device, "flow", 3.5)))
    name, data = listener.next()
    assert (name, data["device_id"], data["key"], data["value"]) == ("telemetry", device, "flow", 3.5)

    # Past its expiry the sweep (every 5 s; called here) closes the connection, and it cannot come back.
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    platform.services.live.drop_ended_users()  # (the periodic sweep may have been first)
    deadline = time.monotonic() + 5
    while listener.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not listener.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener().connect(base_url, auth={"token": raw})
