"""API keys issued and revoked through the REST API become and stop being logins of a real Mosquitto."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from flask.testing import FlaskClient
from sqlalchemy import Engine

from ingest.broker import mosquitto_config, wait_for_port
from ingest.device_auth import SERVICE_USER, MosquittoAuth, connect_key_events, mosquitto_hash
from tests.conftest import free_port
from tests.ingest.conftest import make_device, wait_until
from workbench.auth import api_keys, key_events
from workbench.live.bus import EventBus
from workbench.platform import Platform
from workbench.settings import Settings

# A private Mosquitto with password and ACL files, driven by mosquitto_pub.
pytestmark = [pytest.mark.mosquitto, pytest.mark.mosquitto_clients]

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
def broker(engine: Engine) -> Iterator[tuple[MosquittoAuth, int]]:
    """A private Mosquitto with the platform's login files, connected to the key hooks."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-mqtt-logins-"))
    folder.chmod(0o755)
    auth = MosquittoAuth(folder / "auth", service_password=uuid.uuid4().hex)
    port = free_port()
    (folder / "mosquitto.conf").write_text(mosquitto_config(port, folder, auth_folder=folder / "auth"))
    process = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdin=subprocess.DEVNULL)
    (folder / "mosquitto.pid").write_text(f"{process.pid}\n")
    disconnect = connect_key_events(auth, engine, folder / "mosquitto.pid")
    try:
        wait_for_port("127.0.0.1", port)
        yield auth, port
    finally:
        disconnect()
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _pub(port: int, user: str, password: str, topic: str) -> int:
    command = ["mosquitto_pub", "-p", str(port), "-u", user, "-P", password, "-V", "mqttv5", "-q", "1"]
    return subprocess.run([*command, "-t", topic, "-m", "1"], capture_output=True, timeout=10).returncode


def _device(client: FlaskClient, headers_for: Headers) -> dict:  # type: ignore[type-arg]
    body = {"name": f"login-{uuid.uuid4().hex[:6]}", "type": "pump"}
    response = client.post("/api/v1/devices", json=body, headers=headers_for("admin"))
    assert response.status_code == 201, response.get_json()
    created: dict = response.get_json()  # type: ignore[type-arg]
    return created


def test_keys_from_the_api_log_devices_in_and_out(
    broker: tuple[MosquittoAuth, int], client: FlaskClient, headers_for: Headers
) -> None:
    auth, port = broker
    mine, other = _device(client, headers_for), _device(client, headers_for)
    device, key = mine["id"], mine["api_key"]
    assert {device, other["id"]} <= auth.users()
    own = f"insa/devices/{device}/telemetry/t"
    # Mosquitto rereads the files on SIGHUP, asynchronously: wait for the new login to work.
    wait_until(lambda: _pub(port, device, key, own) == 0)
    # A PUBLISH outside the ACL is dropped (mosquitto_pub may still exit 0): watch what really arrives.
    got: list[str] = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.username_pw_set(SERVICE_USER, auth.service_password)
    watcher.on_message = lambda c, u, message: got.append(message.topic)
    watcher.connect("127.0.0.1", port)
    watcher.subscribe("insa/#", qos=1)
    watcher.loop_start()
    try:
        wait_until(
            lambda: _pub(port, SERVICE_USER, auth.service_password, "insa/ready") == 0 and "insa/ready" in got
        )
        _pub(port, device, key, f"insa/devices/{other['id']}/telemetry/t")
        assert _pub(port, device, key, own) == 0
        _pub(port, SERVICE_USER, auth.service_password, "insa/end")
        wait_until(lambda: "insa/end" in got)
        assert f"insa/devices/{other['id']}/telemetry/t" not in got
        assert own in got
    finally:
        watcher.disconnect()
        watcher.loop_stop()
    assert _pub(port, other["id"], key, f"insa/devices/{other['id']}/telemetry/t") != 0
    assert _pub(port, device, "wbk_wrong", own) != 0

    # Rotation keeps the device logged in with the new key only.
    rotated = client.post(f"/api/v1/keys/{mine['api_key_id']}/rotate", headers=headers_for("admin"))
    assert rotated.status_code == 201, rotated.get_json()
    fresh = rotated.get_json()
    wait_until(lambda: _pub(port, device, key, own) != 0)
    assert _pub(port, device, fresh["api_key"], own) == 0

    revoked = client.post(f"/api/v1/keys/{fresh['id']}/revoke", headers=headers_for("admin"))
    assert revoked.status_code == 200
    assert device not in auth.users()
    assert other["id"] in auth.users()
    wait_until(lambda: _pub(port, device, fresh["api_key"], own) != 0)


def test_a_failing_hook_never_fails_the_api(
    client: FlaskClient, headers_for: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(device_id: uuid.UUID, raw_key: str) -> None:
        raise RuntimeError("broker folder gone")

    stop = key_events.on_key_issued(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="workbench.auth.key_events"):
            created = _device(client, headers_for)
    finally:
        stop()
    assert created["api_key"].startswith("wbk_")
    assert any("key-issued hook" in r.getMessage() for r in caplog.records)


def test_app_connects_the_logins_when_the_folder_is_set(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    from app import _connect_mosquitto_logins

    configured = replace(
        settings,
        mqtt_url="mqtt://workbench:p%40ss@127.0.0.1:1",
        ingest_mosquitto_auth_dir=tmp_path / "auth",
        ingest_mosquitto_pid_file=tmp_path / "missing.pid",  # no broker: the reload is only logged
    )
    platform = Platform(settings=configured, engine=engine, bus=EventBus())
    _connect_mosquitto_logins(platform)
    try:
        device = make_device(engine)
        api_keys.create_key(engine, device, "mqtt")
        lines = dict(line.split(":", 1) for line in (tmp_path / "auth" / "passwd").read_text().splitlines())
        salt = lines[SERVICE_USER].split("$")[3]
        assert lines[SERVICE_USER] == mosquitto_hash("p@ss", base64.b64decode(salt))
        assert str(device) in lines
    finally:
        platform.services.mosquitto_logins()


def test_deleting_a_device_removes_its_login(
    client: FlaskClient, headers_for: Headers, engine: Engine, tmp_path: Path
) -> None:
    auth = MosquittoAuth(tmp_path / "auth", service_password="s")
    disconnect = connect_key_events(auth, engine)
    try:
        device = _device(client, headers_for)["id"]
        assert device in auth.users()
        response = client.delete(f"/api/v1/devices/{device}", headers=headers_for("admin"))
        assert response.status_code == 204
        assert device not in auth.users()
    finally:
        disconnect()
