"""Device authentication against a real, private Mosquitto: own topics only, with id + API key."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine

from ingest.broker import mosquitto_config, wait_for_port
from ingest.device_auth import SERVICE_USER, MosquittoAuth
from tests.conftest import free_port
from tests.ingest.conftest import make_device, wait_until
from workbench.auth import api_keys

# A private Mosquitto with password and ACL files, driven by mosquitto_pub.
pytestmark = [pytest.mark.mosquitto, pytest.mark.mosquitto_clients]


@pytest.fixture
def secured() -> Iterator[tuple[MosquittoAuth, int, subprocess.Popen[bytes]]]:
    """A Mosquitto with the platform's password and ACL files, on a free port."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-mqtt-auth-"))
    folder.chmod(0o755)
    auth = MosquittoAuth(folder / "auth", service_password=uuid.uuid4().hex)
    port = free_port()
    config = mosquitto_config(port, folder, auth_folder=folder / "auth")
    (folder / "mosquitto.conf").write_text(config)
    process = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")], stdin=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port)
    yield auth, port, process
    process.terminate()
    process.wait(10)


def _pub(port: int, user: str, password: str, topic: str, version: str = "mqttv5") -> int:
    command = ["mosquitto_pub", "-p", str(port), "-u", user, "-P", password, "-V", version, "-q", "1"]
    return subprocess.run(
        [*command, "-t", topic, "-m", "1"],
        capture_output=True,
        timeout=10,
    ).returncode


def test_devices_publish_only_on_their_own_topics(
    secured: tuple[MosquittoAuth, int, subprocess.Popen[bytes]], engine: Engine
) -> None:
    auth, port, process = secured
    mine, other = make_device(engine), make_device(engine)
    _, key = api_keys.create_key(engine, mine, "mqtt key")
    auth.grant(str(mine), key)
    auth.reload(process.pid)
    got: list[str] = []
    ready = threading.Event()
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    watcher.username_pw_set(SERVICE_USER, auth.service_password)
    watcher.on_connect = lambda c, u, f, reason, p: (c.subscribe("insa/#", qos=1), ready.set())
    watcher.on_message = lambda c, u, message: got.append(message.topic)
    watcher.connect("127.0.0.1", port)
    watcher.loop_start()
    try:
        assert ready.wait(5)
        assert _pub(port, str(mine), key, f"insa/devices/{mine}/telemetry/t") == 0
        assert _pub(port, str(mine), key, f"insa/devices/{mine}/telemetry", "mqttv311") == 0
        assert _pub(port, str(mine), key, f"insa/devices/{mine}/status") == 0
        _pub(port, str(mine), key, f"insa/devices/{other}/telemetry/t")  # refused by the ACL
        _pub(port, str(mine), key, f"insa/devices/{mine}/config")  # devices may not write their config
        assert _pub(port, str(mine), "wbk_wrong", f"insa/devices/{mine}/telemetry/t") != 0
        assert _pub(port, str(other), key, f"insa/devices/{other}/telemetry/t") != 0
        wait_until(lambda: len(got) >= 3)
        _pub(port, SERVICE_USER, auth.service_password, "insa/devices/end/telemetry/t")
        wait_until(lambda: "insa/devices/end/telemetry/t" in got)
        assert set(got) == {
            f"insa/devices/{mine}/telemetry/t",
            f"insa/devices/{mine}/telemetry",
            f"insa/devices/{mine}/status",
            "insa/devices/end/telemetry/t",
        }
        # Revoking the key (and syncing the files) shuts the device out after the reload.
        found = api_keys.authenticate(engine, key)
        assert found is not None
        api_keys.revoke_key(engine, found.id)
        assert str(mine) in auth.sync(engine)
        auth.reload(process.pid)
        wait_until(lambda: _pub(port, str(mine), key, f"insa/devices/{mine}/telemetry/t") != 0)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
