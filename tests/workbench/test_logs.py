"""Routine library chatter stays out of a normal start and stop; our own lines and real failures stay in."""

from __future__ import annotations

import logging
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from ingest.broker import LocalBroker, wait_for_port
from tests.conftest import free_port
from workbench import logs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> list[logging.LogRecord]:
    handler = _Collect()
    handler.addFilter(logs._Routine(debug=False))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.records
    root.removeHandler(handler)
    root.setLevel(before)


def test_amqtt_port_probes_and_mqtt5_attempts_print_nothing_alarming(
    collected: list[logging.LogRecord], tmp_path: Path
) -> None:
    port = free_port()
    broker = LocalBroker(port, tmp_path, prefer_mosquitto=False)
    broker.start()  # its readiness probe connects and closes without a packet: amqtt's "No data" ERROR
    try:
        wait_for_port("127.0.0.1", port)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        try:
            client.connect("127.0.0.1", port)  # amqtt refuses MQTT 5: "Invalid protocol ... 5"
            client.loop_start()
            client.loop_stop()
        finally:
            client.disconnect()
    finally:
        broker.stop()
    loud = [r for r in collected if r.levelno >= logging.WARNING]
    assert loud == [], [f"{r.name} {r.getMessage()}" for r in loud]


def test_our_lines_and_unknown_errors_stay(collected: list[logging.LogRecord]) -> None:
    logging.getLogger("amqtt.broker").error("disk full while writing the session store")
    logging.getLogger("workbench.rules").error("No data from the rule engine")
    logging.getLogger("werkzeug").warning("WARNING: This is a development server. Do not use it")
    logging.getLogger("asyncua.client.ua_session").error("Publish iteration crashed; retrying in 1s")
    logs.stopping.set()
    try:
        logging.getLogger("asyncua.client.ua_session").error("Publish iteration crashed; retrying in 1s")
    finally:
        logs.stopping.clear()
    assert [r.getMessage() for r in collected] == [
        "disk full while writing the session store",
        "No data from the rule engine",
        "Publish iteration crashed; retrying in 1s",  # while running it is news; while stopping it is not
    ]
