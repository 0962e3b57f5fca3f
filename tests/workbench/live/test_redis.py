"""Web processes share live events through Redis: an event entering one reaches a client of another."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
import socketio

from app import create_app
from tests.conftest import ROOT, free_port
from tests.workbench.live.serving import make_user, serve
from workbench.auth import tokens
from workbench.auth.users import find_user
from workbench.live.bridge import RedisBridge
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Redis server on a free port."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed (apt-get install redis-server)"
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(10)


@pytest.mark.slow
def test_events_of_one_process_reach_clients_of_another(settings: Settings, redis_url: str) -> None:
    local = create_app(replace(settings, redis_url=redis_url))
    platform: Platform = local.extensions[EXTENSION]
    bridge = RedisBridge(redis_url, platform.bus)
    bridge.start()
    device = str(uuid.uuid4())
    peer = subprocess.Popen(
        [sys.executable, "-m", "tests.workbench.live.peer", str(settings.database_url), redis_url, device],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    client = socketio.Client(reconnection=False)
    got: dict[str, list[dict[str, object]]] = {"telemetry": [], "alert": []}
    client.on("telemetry", lambda data: got["telemetry"].append(data))
    client.on("alert", lambda data: got["alert"].append(data))
    try:
        assert peer.stdout is not None and peer.stdout.readline().strip() == "ready"
        email, _ = make_user(platform.engine, "viewer")
        user = find_user(platform.engine, email)
        assert user is not None
        token = tokens.issue(local.config["SECRET_KEY"], user["id"], "viewer", email)
        with serve(local) as base:
            client.connect(base, auth={"token": token}, transports=["polling"], wait_timeout=5)
            assert client.call("subscribe", {"type": "device", "device_id": device}, timeout=5)["ok"]
            assert client.call("subscribe", {"type": "alerts", "severity": ["critical"]}, timeout=5)["ok"]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and (len(got["telemetry"]) < 3 or len(got["alert"]) < 3):
                time.sleep(0.05)
            client.disconnect()
    finally:
        peer.terminate()
        peer.wait(10)
        bridge.stop()
    assert len(got["telemetry"]) >= 3 and len(got["alert"]) >= 3
    assert all(event["device_id"] == device for event in got["telemetry"])
    values = [event["value"] for event in got["telemetry"]]
    assert len(values) == len(set(values)), f"duplicated telemetry across processes: {values}"
    messages = [event["message"] for event in got["alert"]]
    assert len(messages) == len(set(messages)), f"duplicated alerts: {messages}"
