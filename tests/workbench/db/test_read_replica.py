"""WORKBENCH_DATABASE_READ_URL: read-only queries go to a streaming replica, writes to the primary.

The test starts its own PostgreSQL 15 primary and a standby made with pg_basebackup (as the `postgres`
system user: PostgreSQL refuses to run as root), then pauses the standby's WAL replay: what the API reads
then lags what was written, which shows which server answered.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from flask import Flask

from tests.conftest import free_port
from tests.workbench.api.fixtures import make_device
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.migrate import upgrade
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings

BIN = Path("/usr/lib/postgresql/15/bin")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BIN / "pg_basebackup").exists(), reason="needs PostgreSQL 15's binaries"),
]


def _as_postgres(*command: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") and _is_root() else []
    subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[str, str]]:
    """(primary URL, standby URL) of a private primary and its streaming standby."""
    root = Path(tempfile.mkdtemp(prefix="workbench-replica-"))
    root.chmod(0o755)
    if _is_root():
        shutil.chown(root, "postgres", "postgres")
    primary, standby = root / "primary", root / "standby"
    primary_port, standby_port = free_port(), free_port()
    _as_postgres(str(BIN / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust")
    options = f"-c listen_addresses=127.0.0.1 -c unix_socket_directories={root}"
    _as_postgres(
        str(BIN / "pg_ctl"),
        "-D",
        str(primary),
        "-w",
        "-l",
        str(root / "primary.log"),
        "-o",
        f"-p {primary_port} {options}",
        "start",
    )
    try:
        _as_postgres(
            str(BIN / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            "-D",
            str(standby),
            "-R",
            "-X",
            "stream",
        )
        _as_postgres(
            str(BIN / "pg_ctl"),
            "-D",
            str(standby),
            "-w",
            "-l",
            str(root / "standby.log"),
            "-o",
            f"-p {standby_port} {options}",
            "start",
        )
        try:
            yield (
                f"postgresql://postgres@127.0.0.1:{primary_port}/postgres",
                f"postgresql://postgres@127.0.0.1:{standby_port}/postgres",
            )
        finally:
            _as_postgres(str(BIN / "pg_ctl"), "-D", str(standby), "-m", "immediate", "stop")
    finally:
        _as_postgres(str(BIN / "pg_ctl"), "-D", str(primary), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _wait_replayed(primary: str, standby: str) -> None:
    with psycopg.connect(primary, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]  # type: ignore[index]
    deadline = time.monotonic() + 30
    with psycopg.connect(standby, autocommit=True) as conn:
        while True:
            done = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)).fetchone()
            if done and done[0]:
                return
            assert time.monotonic() < deadline, "the standby did not catch up"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def replicated_app(servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """The app on the private primary, reading from its standby."""
    from app import create_app

    primary, standby = servers
    upgrade(primary)
    settings = Settings.from_env(
        {}, database_url=primary, database_read_url=standby, data_dir=tmp_path_factory.mktemp("data")
    )
    application = create_app(settings)
    application.config["TESTING"] = True
    return application


def test_reads_come_from_the_replica_and_writes_go_to_the_primary(
    replicated_app: Flask, servers: tuple[str, str]
) -> None:
    primary, standby = servers
    client = replicated_app.test_client()
    device = make_device(replicated_app, f"replica-{uuid.uuid4().hex[:6]}")
    platform: Platform = replicated_app.extensions[EXTENSION]
    email = f"reader-{uuid.uuid4().hex[:6]}@example.com"
    user_id = create_user(platform.engine, email, "engineer", "correct horse battery staple")
    token = tokens.issue(replicated_app.config["SECRET_KEY"], user_id, "engineer", email)
    reader = {"Authorization": f"Bearer {token}"}
    start = datetime.now(UTC) - timedelta(minutes=5)
    # Written through the API: to the primary (the standby is read-only and would refuse).
    first = client.post("/api/v1/telemetry", json={"key": "t", "value": 1.0}, headers=device.headers)
    assert first.status_code == 200 and first.get_json()["accepted"] == 1
    _wait_replayed(primary, standby)
    with psycopg.connect(standby, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        second = client.post("/api/v1/telemetry", json={"key": "t", "value": 2.0}, headers=device.headers)
        assert second.status_code == 200 and second.get_json()["accepted"] == 1
        end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        query = {"device_id": str(device.id), "keys": "t", "start": start.isoformat(), "end": end}
        aggregate = client.get(
            "/api/v1/telemetry/aggregate",
            query_string={**query, "interval": "1h", "functions": "count"},
            headers=reader,
        )
        assert aggregate.status_code == 200, aggregate.get_json()
        counts = [item["values"]["count"] for item in aggregate.get_json()["items"]]
        assert sum(counts) == 1, (
            "the aggregate came from the paused replica (one point), not the primary (two)"
        )
        export = client.get(
            "/api/v1/telemetry/export", query_string={**query, "format": "csv"}, headers=reader
        )
        assert export.status_code == 200, export.get_json()
        assert export.get_data(as_text=True).count("\n") == 2  # header + the one replicated point
    finally:
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
    _wait_replayed(primary, standby)
    caught_up = client.get(
        "/api/v1/telemetry/aggregate",
        query_string={**query, "interval": "1h", "functions": "count"},
        headers=reader,
    )
    assert sum(item["values"]["count"] for item in caught_up.get_json()["items"]) == 2


def test_without_a_read_url_the_primary_answers(replicated_app: Flask) -> None:
    platform: Platform = replicated_app.extensions[EXTENSION]
    assert platform.read_engine() is platform.reader
    alone = replace(platform, reader=None)
    assert alone.read_engine() is platform.engine
