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


def _connect(base_url: str, platform: Platform, listener: Listener, scope: str, lifetime: timedelta) -> Any:
    """A token of one scope, connected; its id and raw value."""
    expires = datetime.now(UTC) + lifetime
    token_id, raw = service_tokens.create(platform.engine, "historian", [scope], expires, None)
    listener.connect(base_url, auth={"token": raw})
    return token_id, raw


def _refused(listener: Listener, kind: str, permission: str) -> bool:
    answer = listener.call("subscribe", {"type": kind})
    return not answer["ok"] and permission in answer["error"]


def _shut_out(base_url: str, listener: Listener, raw: str) -> None:
    """The connection closes within 5 s, and the token cannot open another."""
    deadline = time.monotonic() + 5
    while listener.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not listener.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        Listener().connect(base_url, auth={"token": raw})


def test_service_token_subscribes_within_its_scopes_until_revoked(
    base_url: str, platform: Platform, listener: Listener
) -> None:
    token_id, raw = _connect(base_url, platform, listener, "devices:read", timedelta(hours=1))
    assert listener.call("subscribe", {"type": "devices"})["ok"]
    assert _refused(listener, "alerts", "alerts:read")
    service_tokens.revoke(platform.engine, token_id)
    assert platform.services.live.drop_ended_users() == 1
    _shut_out(base_url, listener, raw)


def test_service_token_receives_the_telemetry_it_may_read_until_it_expires(
    base_url: str, platform: Platform, listener: Listener
) -> None:
    _, raw = _connect(base_url, platform, listener, "telemetry:read", timedelta(seconds=3))
    device = str(uuid.uuid4())
    assert listener.call("subscribe", {"type": "device", "device_id": device})["ok"]
    assert _refused(listener, "devices", "devices:read")
    platform.bus.publish(TELEMETRY_BATCH, batch((device, "flow", 3.5)))
    name, data = listener.next()
    assert (name, data["device_id"], data["key"], data["value"]) == ("telemetry", device, "flow", 3.5)
    # Past its expiry the sweep (every 5 s; called here too) closes the connection.
    time.sleep(3.2)
    platform.services.live.drop_ended_users()  # (the periodic sweep may have been first)
    _shut_out(base_url, listener, raw)
