"""Socket.IO server: auth (JWT, session cookie), subscribe/unsubscribe, rooms, role checks, bus fan-out."""

from __future__ import annotations

import queue
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import jwt
import pandas as pd
import pytest
import requests
import socketio
from flask import Flask

from tests.workbench.live.serving import make_user
from workbench.auth import tokens
from workbench.auth.users import find_user
from workbench.live.bus import ALERT, ALERT_UPDATE, DEVICE_STATUS, TELEMETRY_BATCH
from workbench.live.events import BATCH_COLUMNS, DeviceStatus, TelemetryBatch
from workbench.platform import Platform


def batch(*points: tuple[str, str, float]) -> TelemetryBatch:
    """A committed batch of (device_id, key, value) points stamped now."""
    now = pd.Timestamp.now(tz="UTC")
    rows = [(now, device, key, value, "C", 100) for device, key, value in points]
    return TelemetryBatch(pd.DataFrame(rows, columns=list(BATCH_COLUMNS)), "test", datetime.now(UTC))


class Listener:
    """A python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.Client(reconnection=False)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        for name in ("telemetry", "device_status", "alert", "alert_update"):
            self.client.on(name, lambda data, name=name: self.events.put((name, data)))

    def connect(self, url: str, transport: str = "polling", **kwargs: Any) -> Listener:
        # Long-polling here keeps these tests quick (werkzeug answers a WebSocket close frame late);
        # the session-cookie test and the browser tests cover the WebSocket transport.
        self.client.connect(url, transports=[transport], wait_timeout=5, **kwargs)
        return self

    def call(self, event: str, data: Any) -> Any:
        return self.client.call(event, data, timeout=5)

    def next(self, timeout: float = 3.0) -> tuple[str, Any]:
        return self.events.get(timeout=timeout)

    def quiet(self, wait: float = 0.5) -> bool:
        time.sleep(wait)
        return self.events.empty()


def token_for(app: Flask, platform: Platform, role: str) -> str:
    email, _ = make_user(platform.engine, role)
    user = find_user(platform.engine, email)
    assert user is not None
    return tokens.issue(app.config["SECRET_KEY"], user["id"], role, email)


@pytest.fixture
def listeners() -> Any:
    made: list[Listener] = []

    def make() -> Listener:
        made.append(Listener())
        return made[-1]

    yield make
    for listener in made:
        listener.client.disconnect()


def test_bad_and_missing_credentials_are_refused(base_url: str, app: Flask, listeners: Any) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(base_url, auth={"token": "not-a-jwt"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(base_url)
    forged = tokens.issue(
        "another-secret-that-is-long-enough-for-hs256", uuid.uuid4(), "admin", "x@example.com"
    )
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(f"{base_url}?token={forged}")
    refresh = tokens.issue(app.config["SECRET_KEY"], uuid.uuid4(), "admin", "x@example.com", kind="refresh")
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(base_url, auth={"token": refresh})


def _refusal(listener: Listener, url: str, **kwargs: Any) -> str:
    reasons: list[Any] = []
    listener.client.on("connect_error", reasons.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        listener.connect(url, **kwargs)
    assert reasons, "no connect_error"
    data = reasons[0]
    return str(data.get("message") if isinstance(data, dict) else data)


def test_a_refused_connection_says_why(base_url: str, app: Flask, listeners: Any) -> None:
    assert _refusal(listeners(), base_url) == "unauthorized: no token and no session"
    assert _refusal(listeners(), base_url, auth={"token": "not-a-jwt"}).startswith(
        "unauthorized: invalid token"
    )
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
    assert _refusal(listeners(), base_url, auth={"token": expired}) == "token expired"


def _real_user(platform: Platform) -> uuid.UUID:
    email, _ = make_user(platform.engine, "viewer")
    found = find_user(platform.engine, email)
    assert found is not None
    return uuid.UUID(str(found["id"]))


def _short_token(app: Flask, user: str, seconds: float) -> str:
    claims = {"sub": user, "role": "viewer", "type": "access", "jti": uuid.uuid4().hex, "ver": 0}
    return jwt.encode({**claims, "exp": time.time() + seconds}, app.config["SECRET_KEY"], algorithm="HS256")


def test_token_refresh_keeps_the_subscriptions_and_expiry_disconnects_with_a_reason(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    user, other = (str(_real_user(platform)) for _ in range(2))  # tokens name users that exist
    client = listeners().connect(base_url, auth={"token": _short_token(app, user, 2)})
    expired: queue.Queue[Any] = queue.Queue()
    client.client.on("auth_expired", expired.put)
    assert client.call("subscribe", {"type": "alerts"})["ok"]
    # Another user's token is no refresh; the same user's is, and the subscriptions stay.
    assert client.call("refresh_token", {"token": _short_token(app, other, 60)})["ok"] is False
    answer = client.call("refresh_token", {"token": _short_token(app, user, 5)})
    assert answer["ok"] and "alerts:*" in answer["rooms"]
    now = datetime.now(UTC)
    deadline = time.monotonic() + 3.2  # the first token's expiry (2 s) and one check (1 s) pass
    while time.monotonic() < deadline and expired.empty():
        time.sleep(0.1)
    assert expired.empty(), "the refreshed connection was expired with the first token"
    platform.bus.publish(ALERT, {"id": "a1", "severity": "info", "message": "m", "timestamp": now})
    assert client.next()[0] == "alert"
    # Without a refresh the connection ends, and the client is told why first.
    assert expired.get(timeout=5) == {"reason": "token expired"}
    deadline = time.monotonic() + 5
    while client.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not client.client.connected


def test_revoked_token_is_refused(base_url: str, app: Flask, platform: Platform, listeners: Any) -> None:
    token = token_for(app, platform, "viewer")
    tokens.revoke(platform.engine, tokens.decode(app.config["SECRET_KEY"], token))
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(base_url, auth={"token": token})


def test_device_subscription_filters_by_device_and_key_and_unsubscribes(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    watched, other = str(uuid.uuid4()), str(uuid.uuid4())
    viewer = listeners().connect(base_url, auth={"token": token_for(app, platform, "viewer")})
    ack = viewer.call("subscribe", {"type": "device", "device_id": watched, "keys": ["temperature"]})
    assert ack["ok"] is True
    platform.bus.publish(
        TELEMETRY_BATCH,
        batch((other, "temperature", 1.0), (watched, "humidity", 2.0), (watched, "temperature", 21.5)),
    )
    name, data = viewer.next()
    assert name == "telemetry"
    assert data["device_id"] == watched and data["key"] == "temperature" and data["value"] == 21.5
    assert data["unit"] == "C" and len(data["points"]) == 1
    assert re.match(r"\d{4}-\d\d-\d\dT", data["timestamp"])
    assert viewer.quiet(), "humidity and the other device must not reach this client"

    assert viewer.call("unsubscribe", {"type": "device", "device_id": watched})["ok"] is True
    platform.bus.publish(TELEMETRY_BATCH, batch((watched, "temperature", 22.0)))
    assert viewer.quiet()


def test_all_keys_and_status_reach_a_device_subscriber_by_url_token(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    device = str(uuid.uuid4())
    client = listeners().connect(f"{base_url}?token={token_for(app, platform, 'operator')}")
    assert client.call("subscribe", {"type": "device", "device_id": device})["ok"]
    platform.bus.publish(TELEMETRY_BATCH, batch((device, "a", 1.0), (device, "b", 2.0)))
    got = {client.next()[1]["key"], client.next()[1]["key"]}
    assert got == {"a", "b"}
    platform.bus.publish(
        DEVICE_STATUS, DeviceStatus(uuid.UUID(device).hex and device, "online", datetime.now(UTC))
    )
    name, data = client.next()
    assert (name, data["device_id"], data["status"]) == ("device_status", device, "online")


def test_alerts_follow_the_severity_filter(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    client = listeners().connect(base_url, auth={"token": token_for(app, platform, "viewer")})
    assert client.call("subscribe", {"type": "alerts", "severity": ["critical"]})["ok"]
    now = datetime.now(UTC)
    platform.bus.publish(
        ALERT, {"id": str(uuid.uuid4()), "severity": "warning", "message": "w", "timestamp": now}
    )
    critical = str(uuid.uuid4())
    platform.bus.publish(ALERT, {"id": critical, "severity": "critical", "message": "c", "timestamp": now})
    name, data = client.next()
    assert (name, data["id"], data["severity"]) == ("alert", critical, "critical")
    assert data["timestamp"] == now.isoformat()
    # Updates follow the filter too: a warning's acknowledgement does not reach a critical-only subscriber.
    platform.bus.publish(
        ALERT_UPDATE,
        {"id": str(uuid.uuid4()), "status": "acknowledged", "severity": "warning", "timestamp": now},
    )
    platform.bus.publish(
        ALERT_UPDATE, {"id": critical, "status": "acknowledged", "severity": "critical", "timestamp": now}
    )
    name, data = client.next()
    assert (name, data["id"], data["status"]) == ("alert_update", critical, "acknowledged")
    assert client.quiet(0.3)


def test_malformed_subscriptions_are_refused(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    client = listeners().connect(base_url, auth={"token": token_for(app, platform, "viewer")})
    assert client.call("subscribe", {"type": "everything"})["ok"] is False
    assert "UUID" in client.call("subscribe", {"type": "device", "device_id": "nope"})["error"]
    assert client.call("subscribe", {"type": "alerts", "severity": ["apocalyptic"]})["ok"] is False
    assert client.call("subscribe", "device")["ok"] is False


def test_session_cookie_authenticates_and_the_role_limits_subscriptions(
    base_url: str, platform: Platform, listeners: Any
) -> None:
    email, password = make_user(platform.engine, "viewer")
    browser = requests.Session()
    form = browser.get(f"{base_url}/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    answer = browser.post(
        f"{base_url}/login",
        data={"email": email, "password": password, "csrf": csrf.group(1)},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
    client = listeners().connect(base_url, transport="websocket", headers={"Cookie": cookie})
    assert client.call("subscribe", {"type": "devices"})["ok"]
    device = str(uuid.uuid4())
    platform.bus.publish(
        DEVICE_STATUS, {"device_id": device, "status": "offline", "timestamp": datetime.now(UTC)}
    )
    assert client.next()[1]["device_id"] == device


def test_open_connections_are_counted_in_metrics(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    def gauge() -> float:
        text = requests.get(f"{base_url}/metrics", timeout=5).text
        found = re.search(r"^workbench_socketio_connections (\S+)$", text, re.M)
        assert found, "the gauge is exported"
        return float(found.group(1))

    before = gauge()
    client = listeners().connect(base_url, auth={"token": token_for(app, platform, "viewer")})
    assert gauge() == before + 1
    client.client.disconnect()
    deadline = time.monotonic() + 5
    while gauge() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauge() == before


def test_a_removed_users_socket_is_disconnected(
    base_url: str, app: Flask, platform: Platform, listeners: Any
) -> None:
    from sqlalchemy import delete

    from workbench.db.tables import users

    kept = listeners().connect(base_url, auth={"token": token_for(app, platform, "viewer")})
    email, _ = make_user(platform.engine, "admin")
    user = find_user(platform.engine, email)
    assert user is not None
    token = tokens.issue(app.config["SECRET_KEY"], user["id"], "admin", email)
    gone = listeners().connect(base_url, auth={"token": token})
    assert gone.call("subscribe", {"type": "devices"})["ok"]
    with platform.engine.begin() as conn:
        conn.execute(delete(users).where(users.c.id == user["id"]))
    assert platform.services.live.drop_ended_users() == 1  # the sweep runs every ACCESS_SWEEP_S too
    deadline = time.monotonic() + 5
    while gone.client.connected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not gone.client.connected and kept.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        listeners().connect(base_url, auth={"token": token})
