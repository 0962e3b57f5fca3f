"""The production server (`workbench web` on gunicorn): request log, slow clients, graceful stop."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import socketio
from flask import Flask
from sqlalchemy import func, select

from tests.conftest import free_port
from tests.workbench.api.fixtures import ApiDevice, make_device
from tests.workbench.web.processes import WebProcess, start_web, wait_healthy, web_env
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.tables import telemetry
from workbench.platform import EXTENSION, Platform

SECRET = "deployment-tests-secret-key-of-enough-length"


@pytest.fixture
def device(app: Flask) -> ApiDevice:
    """A device of its own, with a key."""
    return make_device(app, f"web-{uuid.uuid4().hex[:6]}")


def committed(app: Flask, device: ApiDevice) -> int:
    """Points of ``device`` in the telemetry table."""
    platform: Platform = app.extensions[EXTENSION]
    with platform.engine.connect() as conn:
        count: int = conn.execute(
            select(func.count()).select_from(telemetry).where(telemetry.c.device_id == device.id)
        ).scalar_one()
    return count


@pytest.fixture
def web(database_url: str, tmp_path: Path) -> Iterator[WebProcess]:
    """One `workbench web` process with a short header timeout."""
    process = start_web(web_env(database_url, tmp_path, WORKBENCH_WEB_HEADER_TIMEOUT="8"))
    yield process
    process.stop()


@pytest.mark.slow
def test_web_runs_gunicorn_with_a_request_log(web: WebProcess, app: Flask, device: ApiDevice) -> None:
    answer = requests.post(
        f"{web.url}/api/v1/telemetry", json={"key": "t", "value": 1.0}, headers=device.headers, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    assert answer.headers["Server"].startswith("gunicorn")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("POST /api/v1/telemetry" in line for line in web.lines):
        time.sleep(0.05)
    logged = [line for line in web.lines if "POST /api/v1/telemetry" in line]
    assert logged and " 200 " in logged[0], web.lines[-10:]
    assert committed(app, device) == 1
    # A latest-values query for 100 devices has a request line of ~4.7 kB (gunicorn's default limit: 4094).
    many = "&".join(f"device_id={uuid.uuid4()}" for _ in range(100))
    wide = requests.get(f"{web.url}/api/v1/telemetry/latest?{many}", headers=device.headers, timeout=10)
    assert wide.status_code != 414


class Trickle:
    """Many sockets sending a request head one header line at a time, never finishing it."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets: list[socket.socket] = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            sock.setblocking(False)
            self.sockets.append(sock)
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        line = 0
        while not self._stop.wait(0.5):
            line += 1
            for sock in list(self.sockets):
                try:
                    if sock.recv(1024) == b"":
                        self._closed(sock)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self._closed(sock)
                    continue
                try:
                    sock.send(f"X-Slow-{line}: y\r\n".encode())
                except BlockingIOError:
                    pass
                except OSError:
                    self._closed(sock)

    def _closed(self, sock: socket.socket) -> None:
        self.sockets.remove(sock)
        sock.close()
        self.closed_by_server += 1

    def close(self) -> None:
        """Stop trickling and close what is still open, all at once."""
        self._stop.set()
        self._thread.join(5)
        for sock in self.sockets:
            sock.close()


def _raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


@pytest.mark.slow
def test_thousands_of_slow_clients_stall_neither_ingest_nor_healthz(
    web: WebProcess, app: Flask, device: ApiDevice
) -> None:
    _raise_open_files(8192)
    worker = psutil.Process(web.worker_pid())
    trickle = Trickle(web.port, 3000)
    posted = 0
    slowest = {"healthz": 0.0, "ingest": 0.0}
    most_threads = 0
    try:
        # The header timeout (8 s) closes all 3,000 together while this loop runs (about 12 s).
        deadline = time.monotonic() + 12
        with requests.Session() as http:
            while time.monotonic() < deadline:
                started = time.monotonic()
                health = http.get(f"{web.url}/healthz", timeout=5)
                slowest["healthz"] = max(slowest["healthz"], time.monotonic() - started)
                assert health.status_code == 200
                started = time.monotonic()
                answer = http.post(
                    f"{web.url}/api/v1/telemetry",
                    json=[{"key": "n", "value": float(posted + i)} for i in range(10)],
                    headers=device.headers,
                    timeout=5,
                )
                slowest["ingest"] = max(slowest["ingest"], time.monotonic() - started)
                assert answer.status_code == 200 and answer.json()["accepted"] == 10
                posted += 10
                most_threads = max(most_threads, worker.num_threads())
                time.sleep(0.05)
    finally:
        closed = trickle.closed_by_server
        trickle.close()
    # Every slow client was cut by the header timeout, none ever held a pool thread.
    assert closed == 3000, f"the server closed {closed} of 3000 slow connections"
    assert most_threads < 150, f"{most_threads} threads for 3000 slow connections"
    assert slowest["healthz"] < 1.0 and slowest["ingest"] < 2.0, slowest
    assert posted >= 200
    assert committed(app, device) == posted
    assert requests.get(f"{web.url}/healthz", timeout=2).status_code == 200


@pytest.mark.slow
def test_sigterm_finishes_requests_and_sends_live_clients_back(
    database_url: str, tmp_path: Path, app: Flask, device: ApiDevice
) -> None:
    env = web_env(database_url, tmp_path)
    port = free_port()
    first = start_web(env, port=port)
    platform: Platform = app.extensions[EXTENSION]
    email = f"viewer-{uuid.uuid4().hex[:8]}@example.com"
    user_id = create_user(platform.engine, email, "viewer", "correct horse battery staple")
    user = tokens.issue(SECRET, user_id, "viewer", email)
    client = socketio.Client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.5)
    connects: list[float] = []
    client.on("connect", lambda: connects.append(time.monotonic()))
    second: WebProcess | None = None
    try:
        client.connect(first.url, auth={"token": user}, transports=["websocket"], wait_timeout=10)
        # A request in flight: its body arrives slowly, after SIGTERM.
        body = b'{"key": "slow", "value": 1.0}'
        head = (
            f"POST /api/v1/telemetry HTTP/1.1\r\nHost: x\r\nX-API-Key: {device.api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=25) as slow:
            slow.sendall(head.encode() + body[:5])
            time.sleep(0.5)  # the head reaches the server before the signal
            first.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            slow.sendall(body[5:])
            reply = slow.recv(4096).decode()
        assert reply.startswith("HTTP/1.1 200"), (reply, "".join(first.lines[-20:]))
        assert first.process.wait(30) == 0
        assert "live clients told to reconnect" in first.output()
        # The client was not told to go away for good: it comes back by itself to the next server.
        second = start_web(env, port=port)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(connects) < 2:
            time.sleep(0.1)
        assert len(connects) >= 2, "the Socket.IO client did not reconnect"
        assert committed(app, device) == 1
    finally:
        client.disconnect()
        first.stop()
        if second is not None:
            second.stop()


@pytest.mark.slow
def test_a_worker_stalled_past_the_timeout_is_replaced(database_url: str, tmp_path: Path) -> None:
    web = start_web(web_env(database_url, tmp_path, WORKBENCH_WEB_TIMEOUT="3"))
    stalled = web.worker_pid()
    try:
        os.kill(stalled, signal.SIGSTOP)  # its event loop stops beating, as a hung loop would
        deadline = time.monotonic() + 30
        fresh = None
        while time.monotonic() < deadline and fresh is None:
            children = [child.pid for child in psutil.Process(web.process.pid).children()]
            fresh = next((pid for pid in children if pid != stalled), None)
            time.sleep(0.2)
        assert fresh is not None, "no new worker:\n" + web.output()[-2000:]
        assert f"WORKER TIMEOUT (pid:{stalled})" in web.output()
        assert not psutil.pid_exists(stalled) or psutil.Process(stalled).status() == psutil.STATUS_ZOMBIE
        wait_healthy(web, 60)  # the new worker serves
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(stalled, signal.SIGCONT)
        assert web.stop() == 0
