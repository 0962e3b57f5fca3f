"""A real PostgreSQL stop under ingest: rollups still equal the raw rows, HTTP answers 503 fast, never 500."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from ingest.pipeline import Backpressure, Pipeline
from ingest.points import Reading
from tests.ingest.conftest import make_device, wait_until
from tests.workbench.api.fixtures import make_device as make_api_device
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.embedded import EmbeddedPostgres
from workbench.db.engine import make_engine
from workbench.db.migrate import upgrade
from workbench.db.rollups import RollupMaintainer
from workbench.live.bus import TELEMETRY_BATCH, EventBus
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL server of this module's own, so stopping it leaves the session's server alone."""
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-pg-outage-"))
    server = EmbeddedPostgres(folder / "postgres")
    url = server.start(database="outage")
    upgrade(url)
    yield server, url
    server.stop()


class Feeder:
    """Submits 100-point batches spread over ten minutes of data time until stopped, through backpressure."""

    def __init__(self, pipeline: Pipeline, device: str, start: datetime) -> None:
        self.pipeline = pipeline
        self.device = device
        self.start = start
        self.sent = 0
        self.committed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, size: int) -> Any:
        def done() -> None:
            with self._lock:
                self.committed += size

        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            readings = [
                Reading(
                    self.device,
                    f"k{n % 3}",
                    float(n % 97),
                    (self.start + timedelta(milliseconds=100 * n % 600_000)).isoformat(),
                )
                for n in range(self.sent, self.sent + 100)
            ]
            try:
                self.pipeline.submit(readings, "test", self._done(100), timeout=0.5)
            except Backpressure:
                continue  # the database is down and the queue full: offer the same points again
            self.sent += 100
            time.sleep(0.01)

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _minute_counts(engine: Engine, device: str, table: str) -> dict[datetime, int]:
    with engine.connect() as conn:
        if table == "telemetry":
            query = (
                "SELECT date_bin('1 minute', timestamp, TIMESTAMPTZ '2000-01-01') AS b, count(*) "
                "FROM telemetry WHERE device_id = :d GROUP BY b"
            )
        else:
            query = f"SELECT bucket, sum(count) FROM {table} WHERE device_id = :d GROUP BY bucket"
        return {bucket: int(count) for bucket, count in conn.execute(text(query), {"d": device})}


def test_rollups_equal_raw_counts_after_a_database_stop(
    private_postgres: tuple[EmbeddedPostgres, str], settings: Settings
) -> None:
    server, url = private_postgres
    engine = make_engine(url, pool_size=2)
    device = str(make_device(engine, name="outage"))
    bus = EventBus()
    published = [0]
    bus.subscribe(TELEMETRY_BATCH, lambda _, batch: published.__setitem__(0, published[0] + len(batch.frame)))
    pipeline = Pipeline(replace(settings, database_url=url, ingest_queue_points=5000), engine, bus)
    # Flushed by hand below, so the test knows a flush met the stopped server.
    rollups = RollupMaintainer(engine, bus, flush_seconds=3600, repair=False).start()
    pipeline.start()
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    try:
        with Feeder(pipeline, device, start) as feeder:
            wait_until(lambda: published[0] >= 1000, timeout=20)
            rollups.flush()
            flushed = published[0]
            wait_until(lambda: published[0] > flushed, timeout=20)
            server.stop()
            rollups.flush()  # the partials of the batches committed just before the stop meet a dead server
            assert rollups.deferred > 0
            wait_until(lambda: pipeline.writer.down_since is not None, timeout=20)
            rollups.flush()
            assert server.start(database="outage") == url
            wait_until(lambda: pipeline.writer.down_since is None, timeout=30)
            resumed = feeder.committed
            wait_until(lambda: feeder.committed > resumed + 1000, timeout=30)
        wait_until(lambda: feeder.committed == feeder.sent, timeout=30)
        pipeline.stop()
        rollups.stop()
        assert rollups.deferred == 0
        raw = _minute_counts(engine, device, "telemetry")
        assert sum(raw.values()) >= feeder.sent  # at least once: nothing committed was lost
        assert len(raw) >= 5
        assert _minute_counts(engine, device, "telemetry_1m") == raw
        hours = sum(_minute_counts(engine, device, "telemetry_1h").values())
        assert hours == sum(raw.values())
    finally:
        pipeline.stop()
        rollups.stop()
        engine.dispose()


def test_http_answers_503_at_once_while_the_database_is_down_and_never_500(
    private_postgres: tuple[EmbeddedPostgres, str], settings: Settings
) -> None:
    from app import create_app

    server, url = private_postgres
    app = create_app(replace(settings, database_url=url))
    platform: Platform = app.extensions[EXTENSION]
    device = make_api_device(app, "outage-http")
    unseen = make_api_device(app, "outage-unseen")  # its key is first looked up while the server is down
    admin = create_user(platform.engine, f"outage-{uuid.uuid4().hex[:6]}@example.com", "admin", "pw-outage-1")
    bearer = {"Authorization": f"Bearer {tokens.issue(app.config['SECRET_KEY'], admin, 'admin', 'a@b.c')}"}
    body = [{"key": "t", "value": 1.0}]
    client = app.test_client()
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        caller = app.test_client()
        while not stop.is_set():
            statuses.append(caller.post("/api/v1/telemetry", json=body, headers=device.headers).status_code)
            statuses.append(caller.get("/api/v1/devices", headers=bearer).status_code)

    thread = threading.Thread(target=hammer, daemon=True)
    try:
        assert client.post("/api/v1/telemetry", json=body, headers=device.headers).status_code == 200
        server.stop()
        for method, path, headers in (
            ("POST", "/api/v1/telemetry", device.headers),  # the writer meets the stopped server
            ("POST", "/api/v1/telemetry", device.headers),  # refused before queueing
            ("POST", "/api/v1/telemetry", unseen.headers),  # the key look-up meets it
            ("GET", "/api/v1/devices", bearer),
        ):
            started = time.monotonic()
            response = client.open(
                path, method=method, json=body if method == "POST" else None, headers=headers
            )
            assert time.monotonic() - started < 4, "a client waited for the database"
            assert response.status_code == 503, response.get_json()
            assert response.get_json()["error"]["code"] == "unavailable"
            assert response.headers["Retry-After"] == "5"
        thread.start()  # requests run on while the server starts ("the database system is starting up")
        assert server.start(database="outage") == url
        for headers in (device.headers, unseen.headers):
            wait_until(
                lambda h=headers: client.post("/api/v1/telemetry", json=body, headers=h).status_code == 200,
                timeout=30,
                interval=0.2,
            )
        count = len(statuses)
        wait_until(lambda: len(statuses) > count + 20, timeout=30)
    finally:
        stop.set()
        thread.join(10) if thread.is_alive() else None
        server.start(database="outage")
        platform.services.pipeline.stop()
        platform.engine.dispose()
    assert 500 not in statuses and set(statuses) <= {200, 503}
    assert statuses[-1] == 200
