"""No loss: acks only after commit, through a SIGKILLed ingest process and a PostgreSQL restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select

from ingest.service import IngestService
from tests.conftest import ROOT
from tests.ingest.conftest import count_rows, device_protocol, make_device, wait_until
from workbench.db.embedded import EmbeddedPostgres
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.db.tables import telemetry
from workbench.live.bus import EventBus
from workbench.mqtt import host_port, make_client
from workbench.settings import Settings

pytestmark = pytest.mark.slow


def _publisher(url: str) -> mqtt.Client:
    client = make_client(url, protocol=device_protocol(url))
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    return client


def _publish(client: mqtt.Client, device: uuid.UUID, values: range) -> None:
    infos = [client.publish(f"insa/devices/{device}/telemetry/seq", str(v), qos=1) for v in values]
    for info in infos:
        info.wait_for_publish(30)
        assert info.is_published()


def _wait_subscribed(client: mqtt.Client, engine: Engine, device: uuid.UUID, timeout: float = 90) -> None:
    """Publish the first point (value 0) until the ingest process has subscribed and stored it."""
    deadline = time.monotonic() + timeout
    while count_rows(engine, device) == 0:
        assert time.monotonic() < deadline, "ingest never subscribed"
        _publish(client, device, range(0, 1))
        time.sleep(0.5)


def _distinct(engine: Engine, device: uuid.UUID) -> int:
    with engine.connect() as conn:
        query = select(func.count(func.distinct(telemetry.c.value))).where(telemetry.c.device_id == device)
        return int(conn.execute(query).scalar_one())


def _ingest_process(
    database_url: str, mqtt_url: str, client_id: str, data_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": database_url,
        "WORKBENCH_MQTT_URL": mqtt_url,
        "WORKBENCH_INGEST_CLIENT_ID": client_id,
        "WORKBENCH_DATA_DIR": str(data_dir),
        "WORKBENCH_LOG_LEVEL": "WARNING",
    }
    # `python -m ingest` is `workbench ingest` without importing the web app (which starts slowly).
    return subprocess.Popen([sys.executable, "-m", "ingest"], env=env, cwd=ROOT)


@pytest.mark.mosquitto  # amqtt forgets what it sent and was not acknowledged when the connection drops
def test_sigkill_mid_stream_loses_no_acknowledged_point(
    database_url: str, mqtt_url: str, engine: Engine, tmp_path: Path
) -> None:
    device = make_device(engine)
    client_id = f"test-kill-{uuid.uuid4().hex[:8]}"
    total = 10_000
    process = _ingest_process(database_url, mqtt_url, client_id, tmp_path)
    publisher = _publisher(mqtt_url)
    try:
        _wait_subscribed(publisher, engine, device)
        _publish(publisher, device, range(1, total // 2))
        wait_until(lambda: count_rows(engine, device) >= 1000, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed_at = count_rows(engine, device)
        assert killed_at < total  # the kill was mid-stream
        _publish(publisher, device, range(total // 2, total))  # the broker queues them for the session
        process = _ingest_process(database_url, mqtt_url, client_id, tmp_path)
        wait_until(lambda: _distinct(engine, device) == total, timeout=120, interval=0.2)
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        process.terminate()
        process.wait(15)
    # At-least-once: a point committed but not yet acknowledged when killed is delivered twice.
    assert count_rows(engine, device) >= total


@pytest.fixture
def own_postgres() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A private embedded PostgreSQL (so stopping it leaves the session's server alone)."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-pg-down-"))
    server = EmbeddedPostgres(folder / "postgres")
    url = server.start(database="ingest_down")
    upgrade(url)
    yield server, url
    server.stop()


def test_database_down_stops_acks_and_ingest_resumes(
    own_postgres: tuple[EmbeddedPostgres, str], mqtt_url: str, settings: Settings
) -> None:
    server, url = own_postgres
    engine = make_engine(url, pool_size=2)
    device = make_device(engine)
    configured = replace(
        settings, database_url=url, mqtt_url=mqtt_url, ingest_client_id=f"test-down-{uuid.uuid4().hex[:8]}"
    )
    service = IngestService(configured, engine, EventBus())
    service.start()
    publisher = _publisher(mqtt_url)
    assert service.mqtt is not None
    try:
        _publish(publisher, device, range(0, 200))
        wait_until(lambda: count_rows(engine, device) == 200, timeout=20)
        wait_until(lambda: service.mqtt is not None and service.mqtt.acked >= 200)
        server.stop()
        _publish(publisher, device, range(200, 700))
        wait_until(lambda: service.pipeline.writer.down_since is not None, timeout=20)
        acked_while_down = service.mqtt.acked
        time.sleep(2.0)
        assert service.mqtt.acked == acked_while_down  # nothing acknowledged while PostgreSQL is down
        with pytest.raises(ConnectionError):
            service.health()
        assert server.start(database="ingest_down") == url
        wait_until(lambda: _distinct(engine, device) == 700, timeout=60, interval=0.2)
        wait_until(lambda: service.mqtt is not None and service.mqtt.acked >= 700, timeout=20)
        assert service.health()["pipeline"]["committed_points"] >= 700
    finally:
        publisher.disconnect()
        publisher.loop_stop()
        service.stop()
        engine.dispose()
