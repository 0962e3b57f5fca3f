"""nginx (the shipped config) in front of three `workbench web` processes sharing PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator

import psutil
import pytest
import requests
import socketio
from flask import Flask
from sqlalchemy import select

from tests.workbench.api.fixtures import ApiDevice, make_device
from tests.workbench.web.cluster import Cluster, cluster
from tests.workbench.web.processes import WebProcess
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.tables import telemetry
from workbench.platform import EXTENSION, Platform

SECRET = "deployment-tests-secret-key-of-enough-length"
pytestmark = [pytest.mark.slow, pytest.mark.nginx]


@pytest.fixture(scope="module")
def deployed(database_url: str) -> Iterator[Cluster]:
    """The deployment, for this module."""
    with cluster(database_url) as found:
        yield found


def _session(deployed: Cluster) -> requests.Session:
    http = requests.Session()
    http.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
    http.verify = str(deployed.ca)
    return http


def _viewer_token(app: Flask) -> str:
    platform: Platform = app.extensions[EXTENSION]
    email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
    user_id = create_user(platform.engine, email, "viewer", "correct horse battery staple")
    return tokens.issue(SECRET, user_id, "viewer", email)


def test_https_only_with_hsts_and_secure_cookies(deployed: Cluster) -> None:
    plain = requests.get(f"http://127.0.0.1:{deployed.http_port}/login", allow_redirects=False, timeout=5)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://127.0.0.1/login")
    answer = _session(deployed).get(f"{deployed.https}/login", timeout=5)
    assert answer.status_code == 200
    assert "max-age=31536000" in answer.headers["Strict-Transport-Security"]
    cookies = answer.raw.headers.getlist("Set-Cookie")
    assert cookies and all("; Secure" in cookie for cookie in cookies)
    # Socket.IO's own responses (engine.io, outside Flask's views) carry HSTS as well.
    handshake = _session(deployed).get(f"{deployed.https}/socket.io/?EIO=4&transport=polling", timeout=5)
    assert handshake.status_code == 200
    assert "max-age=31536000" in handshake.headers["Strict-Transport-Security"]
    # Straight to a web process (no proxy, plain HTTP): neither HSTS nor Secure.
    direct = requests.get(f"{deployed.webs[1].url}/login", timeout=5)
    assert "Strict-Transport-Security" not in direct.headers


class LiveClient:
    """A Socket.IO client through nginx that (re)subscribes to one device on every connect."""

    def __init__(self, deployed: Cluster, token: str, device: ApiDevice) -> None:
        self.values: list[float] = []
        self.connects: list[float] = []
        self.client = socketio.Client(
            reconnection=True,
            reconnection_delay=0.3,
            reconnection_delay_max=1.0,
            http_session=_session(deployed),
        )
        self.client.on("connect", self._on_connect)
        self.client.on("telemetry", lambda data: self.values.append(float(data["value"])))
        self.subscribed = threading.Event()
        self.device = device
        self.client.connect(deployed.https, auth={"token": token}, wait_timeout=10)

    def _on_connect(self) -> None:
        self.connects.append(time.monotonic())
        request = {"type": "device", "device_id": str(self.device.id)}
        self.client.emit("subscribe", request, callback=lambda *answer: self.subscribed.set())


def _wait(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_telemetry_posted_through_any_instance_reaches_a_client_of_nginx(
    deployed: Cluster, app: Flask
) -> None:
    device = make_device(app, f"nginx-{uuid.uuid4().hex[:6]}")
    live = LiveClient(deployed, _viewer_token(app), device)
    try:
        assert live.subscribed.wait(10)
        for index, web in enumerate(deployed.webs):
            answer = requests.post(
                f"{web.url}/api/v1/telemetry",
                json={"key": "t", "value": float(index)},
                headers=device.headers,
                timeout=10,
            )
            assert answer.status_code == 200
        assert _wait(lambda: len(live.values) >= 3, 10), live.values
        assert sorted(live.values) == [0.0, 1.0, 2.0]
    finally:
        live.client.disconnect()


def _serving(deployed: Cluster) -> WebProcess:
    """The web process nginx pins this machine's clients to (ip_hash)."""
    counts = [sum("/socket.io/" in line for line in web.lines) for web in deployed.webs]
    return deployed.webs[counts.index(max(counts))]


class Poster:
    """POSTs numbered points through nginx until stopped; keeps the values the server acknowledged."""

    def __init__(self, deployed: Cluster, device: ApiDevice) -> None:
        self.http = _session(deployed)
        self.url = f"{deployed.https}/api/v1/telemetry"
        self.device = device
        self.acked: list[float] = []
        self.failures = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        value = 1000.0
        while not self.stop.is_set():
            batch = [{"key": "n", "value": value + i} for i in range(10)]
            value += 10
            try:
                answer = self.http.post(self.url, json=batch, headers=self.device.headers, timeout=10)
            except requests.RequestException:
                self.failures += 1
                continue
            if answer.status_code == 200 and answer.json()["accepted"] == 10:
                self.acked += [point["value"] for point in batch]
            else:
                self.failures += 1


def test_killing_one_instance_loses_no_acknowledged_point(deployed: Cluster, app: Flask) -> None:
    device = make_device(app, f"nginx-kill-{uuid.uuid4().hex[:6]}")
    token = _viewer_token(app)
    clients = [LiveClient(deployed, token, device) for _ in range(10)]
    poster = Poster(deployed, device)
    try:
        assert all(client.subscribed.wait(10) for client in clients)
        assert _wait(lambda: len(poster.acked) >= 100, 15)
        victim = _serving(deployed)
        worker = victim.worker_pid()
        killed_at = time.monotonic()
        os.kill(victim.process.pid, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        acked_at_kill = len(poster.acked)
        assert _wait(lambda: all(len(client.connects) >= 2 for client in clients), 10)
        reconnected = max(client.connects[1] for client in clients) - killed_at
        assert reconnected < 5.0, f"clients took {reconnected:.1f} s to reconnect"
        # Ingest through nginx keeps going, and the live stream resumes on the surviving processes.
        assert _wait(lambda: len(poster.acked) >= acked_at_kill + 200, 20)
        before = [len(client.values) for client in clients]
        assert _wait(lambda: all(len(c.values) > b for c, b in zip(clients, before, strict=True)), 10)
    finally:
        poster.stop.set()
        poster.thread.join(15)
        for client in clients:
            client.client.disconnect()
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
    platform: Platform = app.extensions[EXTENSION]
    with platform.engine.connect() as conn:
        stored = set(
            conn.execute(select(telemetry.c.value).where(telemetry.c.device_id == device.id)).scalars()
        )
    lost = [value for value in poster.acked if value not in stored]
    assert lost == [], f"{len(lost)} acknowledged points lost of {len(poster.acked)}"
