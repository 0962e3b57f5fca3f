"""Socket.IO against socket.io-client 4 (Node), the client third-party apps use."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import jwt
import pytest
from flask import Flask

from tests.node_peers import NodePeer
from tests.workbench.live.serving import make_user
from workbench.auth import tokens
from workbench.auth.users import find_user
from workbench.live.bus import ALERT, ALERT_UPDATE
from workbench.platform import Platform

pytestmark = pytest.mark.node


def _event(name: str) -> Callable[[object], bool]:
    return lambda line: isinstance(line, dict) and line.get("event") == name


def test_refusals_say_why(base_url: str, app: Flask, peer: Callable[..., NodePeer]) -> None:
    refused = peer("socketio_client.js", base_url, "not-a-jwt").expect(_event("connect_error"))
    assert refused["message"].startswith("unauthorized: invalid token")
    expired = jwt.encode(
        {
            "sub": str(uuid.uuid4()),
            "role": "viewer",
            "type": "access",
            "jti": "x",
            "exp": int(time.time()) - 5,
        },
        app.config["SECRET_KEY"],
        algorithm="HS256",
    )
    assert (
        peer("socketio_client.js", base_url, expired).expect(_event("connect_error"))["message"]
        == "token expired"
    )


def test_alert_updates_follow_the_severity_filter(
    base_url: str, app: Flask, platform: Platform, peer: Callable[..., NodePeer]
) -> None:
    email, _ = make_user(platform.engine, "viewer")
    user = find_user(platform.engine, email)
    assert user is not None
    token = tokens.issue(app.config["SECRET_KEY"], user["id"], "viewer", email)
    client = peer("socketio_client.js", base_url, token, "critical")
    assert client.expect(_event("subscribed"))["ack"]["ok"] is True
    now = datetime.now(UTC)
    warning, critical = str(uuid.uuid4()), str(uuid.uuid4())
    platform.bus.publish(ALERT, {"id": warning, "severity": "warning", "message": "w", "timestamp": now})
    platform.bus.publish(
        ALERT_UPDATE, {"id": warning, "severity": "warning", "status": "resolved", "timestamp": now}
    )
    platform.bus.publish(ALERT, {"id": critical, "severity": "critical", "message": "c", "timestamp": now})
    platform.bus.publish(
        ALERT_UPDATE, {"id": critical, "severity": "critical", "status": "acknowledged", "timestamp": now}
    )
    update = client.expect(_event("alert_update"))
    assert update["data"]["id"] == critical and update["data"]["status"] == "acknowledged"
    received = [line["data"]["id"] for line in client.seen if isinstance(line, dict) and "data" in line]
    assert warning not in received and critical in received
