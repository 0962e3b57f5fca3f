"""The local broker: Mosquitto when installed, amqtt otherwise; both deliver a real publish."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from ingest.broker import LocalBroker, mosquitto_config
from tests.conftest import free_port
from workbench.mqtt import host_port, make_client


def _roundtrip(url: str) -> bytes:
    received: list[bytes] = []
    done = threading.Event()
    subscriber = make_client(url)
    subscriber.on_message = lambda client, userdata, message: (received.append(message.payload), done.set())
    subscriber.connect(*host_port(url))
    subscriber.subscribe("wb/test", qos=1)
    subscriber.loop_start()
    publisher = make_client(url)
    publisher.connect(*host_port(url))
    publisher.loop_start()
    subscribed = threading.Event()
    subscriber.on_subscribe = lambda *args: subscribed.set()
    subscribed.wait(2)
    publisher.publish("wb/test", b"42", qos=1).wait_for_publish(5)
    done.wait(5)
    for client in (subscriber, publisher):
        client.loop_stop()
        client.disconnect()
    return received[0] if received else b""


def test_in_process_broker_delivers(tmp_path: Path) -> None:
    broker = LocalBroker(free_port(), tmp_path, prefer_mosquitto=False)
    broker.start()
    try:
        assert broker.kind == "amqtt"
        assert _roundtrip(broker.url) == b"42"  # with the service login the URL carries
    finally:
        broker.stop()


@pytest.mark.skipif(
    shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists(),
    reason="Mosquitto is not installed",
)
def test_mosquitto_broker_delivers(tmp_path: Path) -> None:
    broker = LocalBroker(free_port(), tmp_path)
    broker.start()
    try:
        assert broker.kind == "mosquitto"
        assert _roundtrip(broker.url) == b"42"
    finally:
        broker.stop()


def test_mosquitto_config_raises_the_queue_limit(tmp_path: Path) -> None:
    assert "max_queued_messages 1000000" in mosquitto_config(1883, tmp_path)
