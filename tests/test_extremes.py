"""The double range's edges through every ingest path of a running `workbench up`, then a restart.

One telemetry value of 1e200 used to brick the data folder: the start-up repair of the rollups overflowed.
Here a real `workbench up` (its own database) accepts every finite double (the magnitude bound raised to the
largest), stores the extremes through HTTP points, CSV and NDJSON imports and MQTT messages, and must start
again cleanly; with the default bound the same value is quarantined with its reason.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import _with_database, free_port
from tests.test_app import ROOT, WORKBENCH, _env, _run
from workbench.db.embedded import ensure_database
from workbench.db.engine import libpq_url

pytestmark = pytest.mark.slow

DBL_MAX = 1.7976931348623157e308
EXTREMES = [DBL_MAX, -DBL_MAX, 1e308, -1e308, 1e200, -1e200, 5e-324, -5e-324, 2.2250738585072014e-308, -0.0]
values = st.lists(
    st.one_of(st.sampled_from(EXTREMES), st.floats(allow_nan=False, allow_infinity=False)),
    min_size=1,
    max_size=6,
)


@dataclass(repr=False)
class Server:
    """A `workbench up` process and what the tests need to reach it."""

    env: dict[str, str]
    database_url: str
    port: int
    mqtt_port: int
    process: subprocess.Popen[str] | None = None
    stderr: list[str] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    device_id: str = ""
    api_key: str = ""
    sent: int = 0

    def __repr__(self) -> str:
        return f"Server({self.base})"

    @property
    def base(self) -> str:
        """The web app's URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, **extra: str) -> list[str]:
        """Start `workbench up`; returns the stderr lines up to healthy (the reader keeps collecting)."""
        self.stderr = []
        env = {**self.env, **extra}
        self.process = subprocess.Popen(
            [*WORKBENCH, "up"], env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        stream = self.process.stderr
        assert stream is not None
        threading.Thread(target=lambda: self.stderr.extend(stream), daemon=True).start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                time.sleep(0.2)
                raise AssertionError("workbench up exited:\n" + "".join(self.stderr))
            try:
                if requests.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    time.sleep(0.5)
                    return list(self.stderr)
            except requests.RequestException:  # not listening yet, or gunicorn's worker not ready yet
                pass
            time.sleep(0.3)
        raise AssertionError("workbench up never became healthy:\n" + "".join(self.stderr))

    def stop(self) -> list[str]:
        """SIGTERM, wait; returns every stderr line of this run."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(60) == 0, "".join(self.stderr)
        time.sleep(0.2)
        return list(self.stderr)

    def rows(self, table: str = "telemetry") -> int:
        """Rows of the device in ``table``, or their sum of counts for a rollup table."""
        what = "count(*)" if table == "telemetry" else "coalesce(sum(count), 0)"
        with psycopg.connect(libpq_url(self.database_url)) as conn:
            row = conn.execute(
                f"SELECT {what} FROM {table} WHERE device_id = %s", [self.device_id]
            ).fetchone()
        assert row is not None
        return int(row[0])


def _quiet(lines: list[str]) -> None:
    text = "".join(lines)
    assert " ERROR " not in text and "Error:" not in text and "Traceback" not in text, text
    assert "development server" not in text and "initdb" not in text, text


@pytest.fixture(scope="module")
def server(postgres_server_url: str) -> Iterator[Server]:
    """A first start on a fresh database (it says how to create the first admin); an admin, a device."""
    name = f"wb_extreme_{uuid.uuid4().hex[:10]}"
    ensure_database(postgres_server_url, name)
    url = _with_database(postgres_server_url, name)
    port, mqtt_port = free_port(), free_port()
    # Readable by the mosquitto user Mosquitto drops to when started as root (pytest's folders are 0700).
    data_dir = Path(tempfile.mkdtemp(prefix="workbench-extremes-"))
    data_dir.chmod(0o755)
    env = _env(
        data_dir,
        WORKBENCH_DATABASE_URL=url,
        WORKBENCH_PORT=str(port),
        WORKBENCH_MQTT_PORT=str(mqtt_port),
    )
    running = Server(env, url, port, mqtt_port)
    first = running.start(WORKBENCH_INGEST_MAX_ABS_VALUE=str(DBL_MAX))
    assert any("no administrator yet" in line and "workbench user create" in line for line in first), first
    created = _run(
        ["user", "create", "--email", "ops@example.com", "--role", "admin", "--password", "ops-password"], env
    )
    assert created.returncode == 0, created.stderr
    token = requests.post(
        f"{running.base}/api/v1/auth/login", json={"email": "ops@example.com", "password": "ops-password"}
    ).json()["access_token"]
    running.headers = {"Authorization": f"Bearer {token}"}
    device = requests.post(
        f"{running.base}/api/v1/devices", json={"name": "edge", "type": "sensor"}, headers=running.headers
    ).json()
    running.device_id, running.api_key = str(device["id"]), device["api_key"]
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.process.kill()
            running.process.wait(30)
        with psycopg.connect(libpq_url(postgres_server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def _mqtt(server: Server) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"extreme-{uuid.uuid4().hex[:6]}")
    client.username_pw_set(server.device_id, server.api_key)
    client.connect("127.0.0.1", server.mqtt_port)
    client.loop_start()
    return client


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=values)
def test_extremes_are_stored_through_every_ingest_path(server: Server, batch: list[float]) -> None:
    key = {"X-API-Key": server.api_key}
    answer = requests.post(
        f"{server.base}/api/v1/telemetry", json=[{"key": "v", "value": v} for v in batch], headers=key
    ).json()
    assert answer["accepted"] == len(batch), answer
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["timestamp", "device_id", "key", "value", "unit", "quality"])
    stamp = time.time()
    for value in batch:
        writer.writerow([stamp, server.device_id, "csv", repr(value), "", 100])
    answer = requests.post(
        f"{server.base}/api/v1/telemetry/import",
        data=table.getvalue().encode(),
        headers={**server.headers, "Content-Type": "text/csv"},
    ).json()
    assert answer["accepted"] == len(batch), answer
    ndjson = "\n".join(json.dumps({"key": "nd", "value": v}) for v in batch).encode()
    answer = requests.post(
        f"{server.base}/api/v1/telemetry/import?format=ndjson", data=ndjson, headers=key
    ).json()
    assert answer["accepted"] == len(batch), answer
    client = _mqtt(server)
    try:
        topic = f"insa/devices/{server.device_id}/telemetry"
        client.publish(
            topic, json.dumps({"telemetry": {f"m{i}": v for i, v in enumerate(batch)}}), qos=1
        ).wait_for_publish(10)
        for value in batch:
            client.publish(f"{topic}/bare", repr(value), qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    server.sent += 5 * len(batch)
    deadline = time.monotonic() + 20
    while server.rows() < server.sent:
        assert time.monotonic() < deadline, f"{server.rows()} of {server.sent} rows stored"
        time.sleep(0.1)
    assert server.rows() == server.sent


def test_the_platform_restarts_after_storing_them(server: Server) -> None:
    time.sleep(2.5)  # the rollup flush interval: the folded partials reach the tables too
    _quiet(server.stop())
    second = server.start()  # the default bound now: 1e100
    _quiet(second)
    assert not any("no administrator yet" in line for line in second)
    assert server.rows("telemetry_1m") == server.rows() == server.sent  # the tail repair rebuilt them
    answer = requests.post(
        f"{server.base}/api/v1/telemetry",
        json={"key": "v", "value": 1e200},
        headers={"X-API-Key": server.api_key},
    ).json()
    assert answer["accepted"] == 0 and "WORKBENCH_INGEST_MAX_ABS_VALUE" in answer["errors"][0]["reason"]
    _quiet(server.stop())
