"""The local broker refuses anonymous clients and keeps devices to their own topics (Mosquitto, amqtt)."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine

from app import running_services
from ingest.broker import LocalBroker
from ingest.device_auth import SERVICE_USER, connect_key_events, subscription_allowed, topic_allowed
from tests.conftest import free_port
from tests.ingest.conftest import make_device, wait_until
from workbench.auth import api_keys
from workbench.mqtt import host_port, login_url, make_client
from workbench.settings import Settings

HAS_MOSQUITTO = shutil.which("mosquitto") is not None or Path("/usr/sbin/mosquitto").exists()
KINDS = [
    "amqtt",
    pytest.param(
        "mosquitto", marks=pytest.mark.skipif(not HAS_MOSQUITTO, reason="Mosquitto is not installed")
    ),
]


def _folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-logins-"))
    folder.chmod(0o755)  # Mosquitto started by root drops to its own user and must reach the files
    return folder


@pytest.fixture(params=KINDS)
def broker(request: pytest.FixtureRequest, engine: Engine) -> Iterator[LocalBroker]:
    """A local broker with the default settings (logins required), its files following API keys."""
    folder = _folder()
    made = LocalBroker(free_port(), folder, prefer_mosquitto=request.param == "mosquitto")
    made.start()
    assert made.kind == request.param and made.auth is not None
    disconnect = connect_key_events(made.auth, engine, made.pid_file)
    yield made
    disconnect()
    made.stop()
    shutil.rmtree(folder, ignore_errors=True)


class Client:
    """A connected paho client that records what it receives and the broker's CONNACK."""

    def __init__(self, url: str, subscribe: list[str] | None = None) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.reason: Any = None
        self.granted: list[Any] = []
        self._answered = threading.Event()
        self._subscribed = threading.Event()
        self.client = make_client(url, f"test-{uuid.uuid4().hex[:8]}")
        self.client.reconnect_delay_set(60, 60)  # one attempt per test: a refusal stays a refusal
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda c, u, message: self.got.append((message.topic, message.payload))
        self.topics = subscribe or []
        self.client.connect(*host_port(url))
        self.client.loop_start()
        assert self._answered.wait(5), "the broker never answered CONNECT"

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reason = reason
        if not reason.is_failure and self.topics:
            client.subscribe([(topic, 1) for topic in self.topics])
        else:
            self._subscribed.set()
        self._answered.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self.granted = list(codes)
        self._subscribed.set()

    @property
    def accepted(self) -> bool:
        """Whether the broker accepted the login."""
        return self.reason is not None and not self.reason.is_failure

    def wait_subscribed(self) -> None:
        """Block until the SUBACK arrived."""
        assert self._subscribed.wait(5), "no SUBACK"

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's acknowledgement."""
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def _device_login(engine: Engine) -> tuple[uuid.UUID, str]:
    device = make_device(engine)
    return device, api_keys.create_key(engine, device, "mqtt login")[1]


def _anonymous(broker: LocalBroker) -> str:
    return f"mqtt://127.0.0.1:{broker.port}"


def test_anonymous_clients_are_refused_by_default(broker: LocalBroker, engine: Engine) -> None:
    watcher = Client(broker.url, ["#"])
    watcher.wait_subscribed()
    intruder = Client(_anonymous(broker), ["#"])
    try:
        assert watcher.accepted
        assert not intruder.accepted  # no CONNACK success: no publish, no `#` subscription
        assert intruder.reason.getName() in {"Not authorized", "Bad user name or password"}
        wrong = Client(f"mqtt://{SERVICE_USER}:guess@127.0.0.1:{broker.port}")
        assert not wrong.accepted
        wrong.close()
    finally:
        intruder.close()
        watcher.close()


def test_a_device_publishes_and_reads_only_its_own_topics(broker: LocalBroker, engine: Engine) -> None:
    (mine, key), (other, other_key) = _device_login(engine), _device_login(engine)
    platform = Client(broker.url, ["insa/#"])
    platform.wait_subscribed()
    # Retained configs, as the platform publishes them: each device may read its own only.
    platform.publish(f"insa/devices/{other}/config", "secret-config-of-other", retain=True)
    platform.publish(f"insa/devices/{mine}/config", "my-config", retain=True)

    def logged_in() -> Client | None:  # Mosquitto rereads its files on SIGHUP, asynchronously
        topics = ["#", f"insa/devices/{mine}/config", f"insa/devices/{mine}/command"]
        attempt = Client(login_url(broker.url, str(mine), key), topics)
        if attempt.accepted:
            return attempt
        attempt.close()
        return None

    device: Client = wait_until(logged_in)
    try:
        device.wait_subscribed()
        device.publish(f"insa/devices/{mine}/telemetry/t", "1")
        device.publish(f"insa/devices/{other}/telemetry/t", "spoofed")  # refused by the topic rules
        device.publish(f"insa/devices/{other}/status", "offline")  # spoofed status: refused too
        device.publish(f"insa/devices/{mine}/config", "self-made config")  # devices never write config
        device.publish(f"insa/devices/{mine}/status", "online")
        platform.publish(f"insa/devices/{other}/command", "for other")
        platform.publish(f"insa/devices/{mine}/command", "for me")
        wait_until(lambda: (f"insa/devices/{mine}/status", b"online") in platform.got)
        wait_until(lambda: (f"insa/devices/{mine}/command", b"for me") in device.got)
        published = {topic for topic, _ in platform.got}
        assert f"insa/devices/{mine}/telemetry/t" in published
        assert f"insa/devices/{other}/telemetry/t" not in published
        assert f"insa/devices/{other}/status" not in published
        assert (f"insa/devices/{mine}/config", b"self-made config") not in platform.got
        # `#` brought the device nothing of others (retained or live), only its own config and command.
        assert all(topic.startswith(f"insa/devices/{mine}/") for topic, _ in device.got), device.got
        assert (f"insa/devices/{mine}/config", b"my-config") in device.got
        assert not any(b"other" in payload for _, payload in device.got)
        # Another device's key does not open this device's login.
        stranger = Client(login_url(broker.url, str(mine), other_key))
        assert not stranger.accepted
        stranger.close()
    finally:
        device.close()
        platform.close()


def test_a_revoked_key_no_longer_logs_in(broker: LocalBroker, engine: Engine) -> None:
    device, key = _device_login(engine)
    url = login_url(broker.url, str(device), key)

    def accepted() -> bool:
        attempt = Client(url)
        attempt.close()
        return attempt.accepted

    wait_until(accepted)
    found = api_keys.authenticate(engine, key)
    assert found is not None
    api_keys.revoke_key(engine, found.id)
    wait_until(lambda: not accepted())


def test_anonymous_access_is_an_explicit_choice(tmp_path: Path) -> None:
    broker = LocalBroker(free_port(), _folder(), prefer_mosquitto=False, allow_anonymous=True)
    broker.start()
    try:
        assert broker.auth is None and "@" not in broker.url
        anyone = Client(_anonymous(broker))
        assert anyone.accepted
        anyone.close()
    finally:
        broker.stop()


@pytest.mark.skipif(not HAS_MOSQUITTO, reason="Mosquitto is not installed")
def test_workbench_up_starts_mosquitto_with_logins_in_the_auth_folder(settings: Settings) -> None:
    folder = _folder()
    configured = replace(
        settings, data_dir=folder, mqtt_port=free_port(), ingest_mosquitto_auth_dir=folder / "logins"
    )
    with running_services(configured) as resolved:
        config = (folder / "mosquitto" / "mosquitto.conf").read_text()
        assert "allow_anonymous false" in config and "allow_anonymous true" not in config
        assert f"password_file {folder / 'logins' / 'passwd'}" in config
        assert resolved.ingest_mosquitto_auth_dir == folder / "logins"
        assert resolved.mqtt_url and resolved.mqtt_url.startswith(f"mqtt://{SERVICE_USER}:")
        platform = Client(resolved.mqtt_url)  # the platform's own clients log in with the service login
        intruder = Client(f"mqtt://127.0.0.1:{configured.mqtt_port}")
        assert platform.accepted and not intruder.accepted
        platform.close()
        intruder.close()
    shutil.rmtree(folder, ignore_errors=True)


def test_the_topic_rules_match_the_acl_file() -> None:
    device = str(uuid.uuid4())
    assert topic_allowed(device, f"insa/devices/{device}/telemetry/rpm", write=True)
    assert not topic_allowed(device, f"insa/devices/{device}/telemetry/a/b", write=True)
    assert not topic_allowed(device, f"insa/devices/{device}/config", write=True)
    assert topic_allowed(device, f"insa/devices/{device}/config", write=False)
    assert not topic_allowed(device, f"insa/devices/{uuid.uuid4()}/telemetry", write=True)
    assert not topic_allowed("+", "insa/devices/+/telemetry", write=True)  # wildcards never stand in
    assert topic_allowed("edge-1", "spBv1.0/plant/NDATA/edge-1", write=True)
    assert not topic_allowed("edge-1", "spBv1.0/plant/NDATA/edge-2", write=True)
    assert subscription_allowed(device, f"insa/devices/{device}/command")
    assert not subscription_allowed(device, "#")
    assert not subscription_allowed(device, "insa/devices/+/command")
    assert subscription_allowed(SERVICE_USER, "#")
