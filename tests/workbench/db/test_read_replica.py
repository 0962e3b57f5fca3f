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
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest
from flask import Flask
from sqlalchemy import insert

from tests.conftest import free_port
from tests.workbench.api.fixtures import ApiDevice, make_device
from tests.workbench.notebooks.fixtures import write_notebook
from workbench.auth import tokens
from workbench.auth.users import create_user
from workbench.db.migrate import upgrade
from workbench.db.tables import dashboards
from workbench.notebooks.runner import NotebookRunner
from workbench.platform import EXTENSION, Platform
from workbench.reports.service import ReportService
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


@contextmanager
def replay_paused(primary: str, standby: str) -> Iterator[None]:
    """The standby caught up with the primary, then frozen there until the block ends."""
    _wait_replayed(primary, standby)
    with psycopg.connect(standby, autocommit=True) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        with psycopg.connect(standby, autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")
        _wait_replayed(primary, standby)


COUNT = (
    "import psycopg\n"
    "from workbench.notebooks import helpers\n"
    "\n"
    'rows = len(helpers.telemetry(device, "t", start, end))\n'
    "with psycopg.connect(helpers.read_url()) as conn:\n"
    '    standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]\n'
    'helpers.record("rows", rows)\n'
    'helpers.record("standby", standby)'
)

REPORT_PARAMETERS = (
    'database_url = ""\nstart = ""\nend = ""\ntimezone = "UTC"\ndevices = []\narea = ""\nreport_dir = ""'
)
REPORT = (
    "from workbench.reports.kit import ReportKit\n"
    "\n"
    'kit = ReportKit(database_url, start, end, timezone, devices, area, report_dir, title="Replica")\n'
    "data = kit.telemetry()\n"
    "with kit.engine.connect() as conn:\n"
    '    standby = conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar()\n'
    'print(f"rows={len(data)} standby={standby}")\n'
    "kit.finish()"
)


def _points(app: Flask, device: ApiDevice, values: list[float]) -> None:
    """POST points of key ``t`` through the API (to the primary), one a minute ending now."""
    client = app.test_client()
    now = datetime.now(UTC)
    for n, value in enumerate(values):
        at = (now - timedelta(minutes=len(values) - n)).isoformat()
        body = {"key": "t", "value": value, "timestamp": at}
        answer = client.post("/api/v1/telemetry", json=body, headers=device.headers)
        assert answer.status_code == 200 and answer.get_json()["accepted"] == 1, answer.get_json()


def _engineer(app: Flask) -> dict[str, str]:
    platform: Platform = app.extensions[EXTENSION]
    email = f"engineer-{uuid.uuid4().hex[:6]}@example.com"
    user_id = create_user(platform.engine, email, "engineer", "correct horse battery staple")
    return {"Authorization": f"Bearer {tokens.issue(app.config['SECRET_KEY'], user_id, 'engineer', email)}"}


def test_reports_backtests_and_kernels_read_the_replica_live_rules_the_primary(
    replicated_app: Flask, servers: tuple[str, str], tmp_path: Path
) -> None:
    primary, standby = servers
    platform: Platform = replicated_app.extensions[EXTENSION]
    client, engineer = replicated_app.test_client(), _engineer(replicated_app)
    device = make_device(replicated_app, f"replica-{uuid.uuid4().hex[:6]}")
    rule = client.post(
        "/api/v1/rules",
        json={
            "name": f"hot-{uuid.uuid4().hex[:6]}",
            "type": "threshold",
            "target": {"device_id": str(device.id)},
            "condition": {"key": "t", "operator": ">", "value": 0},
            "action": {"type": "alert", "severity": "warning"},
            "enabled": False,
        },
        headers=engineer,
    )
    assert rule.status_code == 201, rule.get_json()
    notebooks = tmp_path / "repo"
    (notebooks / "reports").mkdir(parents=True)
    write_notebook(notebooks, "count", COUNT, parameters='device = ""\nstart = ""\nend = ""')
    write_notebook(notebooks / "reports", "replica", REPORT, parameters=REPORT_PARAMETERS)
    runner = NotebookRunner(platform.settings, engine=platform.engine, root=notebooks, pool_size=1)
    reports = ReportService(platform, notebooks_dir=notebooks / "reports", max_parallel=1)
    start, end = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=5)
    window = {"start": start.isoformat(), "end": end.isoformat()}
    _points(replicated_app, device, [1.0, 2.0])
    try:
        with replay_paused(primary, standby):
            _points(replicated_app, device, [3.0])  # on the primary only, while the standby stands still

            # A backtest through the API (the UI calls the same function): the replica's two points.
            tested = client.post(f"/api/v1/rules/{rule.get_json()['id']}/test", json=window, headers=engineer)
            assert tested.status_code == 200, tested.get_json()
            assert tested.get_json()["points"] == 2

            # Notebook kernels: a backtest (dry run, warm and cold kernels) reads the replica, a live
            # rule run reads the primary, where the points it was woken for are.
            params = {"device": str(device.id), **window}
            for mode in ("warm", "cold"):
                dry = runner.run("count.ipynb", params, dry_run=True, mode=mode)
                assert dry.ok, dry.error
                assert dry.records == {"rows": 2, "standby": True}, mode
            live = runner.run("count.ipynb", params)
            assert live.ok and live.records == {"rows": 3, "standby": False}

            # A report: its kit and the helper API behind it read the replica.
            report_id = reports.request("replica", "html", {**window, "devices": [device.name]})
            row = reports.run(report_id)
            assert row["status"] == "done", row["error"]
            evidence = nbformat.read(reports.archive_dir / f"{report_id}.ipynb", as_version=4)
            printed = "".join(
                output.get("text", "")
                for cell in evidence.cells
                if cell.cell_type == "code"
                for output in cell.outputs
            )
            assert "rows=2 standby=True" in printed, printed
            # The report's own record (written by the platform) is on the primary.
            with psycopg.connect(primary, autocommit=True) as conn:
                status = conn.execute("SELECT status FROM reports WHERE id = %s", (report_id,)).fetchone()
            assert status == ("done",)
    finally:
        runner.close()
        reports.close()
    caught_up = client.post(f"/api/v1/rules/{rule.get_json()['id']}/test", json=window, headers=engineer)
    assert caught_up.get_json()["points"] == 3


def _text_of(component: Any, wanted: str) -> str:
    """The text of the component with id ``wanted`` in a Dash layout."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list | tuple):
            for item in node:
                walk(item)
        elif hasattr(node, "to_plotly_json"):
            props = node.to_plotly_json()["props"]
            if props.get("id") == wanted:
                found.append(str(props.get("children")))
            walk(props.get("children"))

    walk(component)
    assert len(found) == 1, f"no single {wanted} in the layout"
    return found[0]


def test_a_dashboard_draws_from_the_replica(replicated_app: Flask, servers: tuple[str, str]) -> None:
    from workbench.ui.pages.dashboards import page
    from workbench.ui.session import UiUser

    primary, standby = servers
    platform: Platform = replicated_app.extensions[EXTENSION]
    device = make_device(replicated_app, f"replica-{uuid.uuid4().hex[:6]}")
    email = f"viewer-{uuid.uuid4().hex[:6]}@example.com"
    user_id = create_user(platform.engine, email, "viewer", "correct horse battery staple")
    widget = {"id": "w1", "type": "table", "device_id": str(device.id), "keys": ["t"]}
    with platform.engine.begin() as conn:
        dashboard_id = conn.execute(
            insert(dashboards)
            .values(name="replica", user_id=user_id, layout={}, widgets=[widget], is_public=True)
            .returning(dashboards.c.id)
        ).scalar_one()
    _points(replicated_app, device, [11.0])
    with replay_paused(primary, standby):
        _points(replicated_app, device, [77.0])  # the latest value on the primary only
        with replicated_app.test_request_context("/ui/"):
            layout, _ = page(UiUser(str(user_id), "viewer", email), str(dashboard_id))
        assert _text_of(layout, "w-w1-v0") == "11"
    with replicated_app.test_request_context("/ui/"):
        layout, _ = page(UiUser(str(user_id), "viewer", email), str(dashboard_id))
    assert _text_of(layout, "w-w1-v0") == "77"


def test_without_a_read_url_the_primary_answers(replicated_app: Flask) -> None:
    platform: Platform = replicated_app.extensions[EXTENSION]
    assert platform.read_engine() is platform.reader
    alone = replace(platform, reader=None)
    assert alone.read_engine() is platform.engine
