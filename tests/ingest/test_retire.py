"""Fewer workers than last time: the retired workers' sessions are drained into the database, then ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import Engine

from ingest.retire import PROBE_EXTRA, retired_client_ids
from ingest.service import IngestService
from tests.conftest import ROOT
from tests.ingest.conftest import count_rows, make_device, wait_until
from tests.ingest.test_scale_out import distinct_values
from workbench.live.bus import EventBus
from workbench.mqtt import host_port, make_client
from workbench.settings import Settings

pytestmark = pytest.mark.mosquitto  # worker sessions are MQTT 5 only: on amqtt there is nothing to retire


def session_present(url: str, client_id: str, keep: bool = False) -> bool:
    """Whether the broker holds a session for ``client_id``; ``keep`` False ends the one found."""
    client = make_client(url, client_id, protocol=mqtt.MQTTv5)
    flags: dict[str, bool] = {}
    client.on_connect = lambda c, u, f, rc, p: flags.setdefault("present", bool(f.session_present))
    properties = Properties(PacketTypes.CONNECT)
    # Expiry 0 at connect: the check itself leaves no session behind (and ends a found one).
    properties.SessionExpiryInterval = 60 if keep else 0
    host, port = host_port(url)
    client.connect(host, port, clean_start=False, properties=properties)
    client.loop_start()
    try:
        wait_until(lambda: "present" in flags, timeout=10)
    finally:
        client.disconnect()
        client.loop_stop()
    return flags["present"]


def publish_qos1(url: str, device: uuid.UUID, values: range) -> None:
    """Publish one QoS 1 point per value and wait until the broker has every one."""
    client = make_client(url, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = [client.publish(f"insa/devices/{device}/telemetry/seq", str(v), qos=1) for v in values]
        for info in infos:
            info.wait_for_publish(30)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_retired_client_ids() -> None:
    assert retired_client_ids("ing", 3) == [f"ing-{n}" for n in range(3, 3 + PROBE_EXTRA)] + ["ing"]
    assert retired_client_ids("ing", 1) == [f"ing-{n}" for n in range(PROBE_EXTRA)]


def test_three_workers_then_two(settings: Settings, engine: Engine, mqtt_url: str) -> None:
    """The third worker's share, queued while all were down, is committed; its session is ended."""
    group = f"g{uuid.uuid4().hex[:8]}"
    client_id = f"retire-{group}"
    configured = replace(settings, mqtt_url=mqtt_url, ingest_shared_group=group, ingest_client_id=client_id)

    def workers(count: int, retire: list[str] | None = None) -> list[IngestService]:
        # worker=None with explicit ids (as in test_scale_out): no rollup repair per service.
        return [
            IngestService(
                replace(configured, ingest_client_id=f"{client_id}-{n}"),
                engine,
                EventBus(),
                retire=retire if n == 0 else None,
            )
            for n in range(count)
        ]

    device = make_device(engine)
    first = workers(3)
    for service in first:
        service.start()
    for service in first:
        service.stop()  # a clean stop keeps each persistent session, still in the group
    total = 3000
    publish_qos1(mqtt_url, device, range(total))  # about a third queues to each session
    second = workers(2, retire=retired_client_ids(client_id, 2))
    for service in second:
        service.start()
    retirer = second[0].retirer
    assert retirer is not None
    # The workers still running resumed their own sessions (and with them their shares).
    assert all(service.mqtt is not None and service.mqtt.session_present for service in second)
    try:
        wait_until(lambda: distinct_values(engine, device) == total, timeout=60, interval=0.2)
        wait_until(retirer.done.is_set, timeout=60)
    finally:
        for service in second:
            service.stop()
    assert count_rows(engine, device) >= total
    assert [(r.client_id, r.ended) for r in retirer.retired] == [(f"{client_id}-2", True)]
    assert retirer.retired[0].recovered > 0  # it held a share
    assert not session_present(mqtt_url, f"{client_id}-2")  # ended
    assert not session_present(mqtt_url, f"{client_id}-3")  # the probe that found nothing left nothing
    assert not session_present(mqtt_url, client_id)
    # The running workers' sessions are theirs to resume (these checks end them: the test is over).
    assert session_present(mqtt_url, f"{client_id}-0")
    assert session_present(mqtt_url, f"{client_id}-1")


def _ingest(
    database_url: str, mqtt_url: str, client_id: str, workers: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": database_url,
        "WORKBENCH_MQTT_URL": mqtt_url,
        "WORKBENCH_INGEST_CLIENT_ID": client_id,
        "WORKBENCH_DATA_DIR": str(log.parent),
        "WORKBENCH_LOG_LEVEL": "INFO",
    }
    with log.open("ab") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "ingest", "--workers", str(workers)], env=env, cwd=ROOT, stderr=stderr
        )


@pytest.mark.slow
def test_two_worker_processes_then_one(
    database_url: str, mqtt_url: str, engine: Engine, tmp_path: Path
) -> None:
    """`python -m ingest --workers 2`, stopped; messages queue to both sessions; one process takes all."""
    device = make_device(engine)
    client_id = f"retire-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "ingest.log"
    process = _ingest(database_url, mqtt_url, client_id, 2, log)
    try:
        # Both workers' sessions exist and are subscribed before they stop.
        wait_until(lambda: log.read_text().count("MQTT ingest connected") >= 2, timeout=90, interval=0.2)
        # "Connected" comes before the SUBACK: a point published before any worker subscribed reaches
        # nobody, so the first one is sent again until it is stored.
        deadline = time.monotonic() + 30
        while count_rows(engine, device) == 0:
            assert time.monotonic() < deadline, "the workers never subscribed"
            publish_qos1(mqtt_url, device, range(0, 1))
            time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    total = 2000
    publish_qos1(mqtt_url, device, range(1, total))
    process = _ingest(database_url, mqtt_url, client_id, 1, log)
    try:
        wait_until(lambda: distinct_values(engine, device) == total, timeout=120, interval=0.2)
        wait_until(lambda: log.read_text().count("retired MQTT session") == 2, timeout=60, interval=0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert count_rows(engine, device) >= total
    text = log.read_text()
    recovered = [
        int(line.split(": ")[-1].split()[0]) for line in text.splitlines() if "retired MQTT session" in line
    ]
    assert len(recovered) == 2 and all(count > 0 for count in recovered), text[-3000:]
    assert not session_present(mqtt_url, f"{client_id}-0")
    assert not session_present(mqtt_url, f"{client_id}-1")
    assert not session_present(mqtt_url, f"{client_id}-2")
