"""Fixtures that start real things: a fresh PostgreSQL database per session, a real MQTT broker, the app."""

from __future__ import annotations

import collections
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient

from workbench.db.embedded import EmbeddedPostgres, ensure_database
from workbench.db.engine import libpq_url
from workbench.db.migrate import upgrade
from workbench.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Shared API auth fixtures (users of every role, their headers, a device with its key).
pytest_plugins = ["tests.workbench.api.fixtures", "tests.workbench.notebooks.fixtures", "tests.node_peers"]


# Programs some tests drive, and the Debian package that brings each. `.ci/run` installs them; on a machine
# without one, those tests are skipped with this hint (and fail instead when CI is set, so CI never skips).
NEEDS = {
    "mosquitto": ("mosquitto", "Mosquitto (MQTT 5, shared subscriptions, device logins)"),
    "mosquitto_clients": ("mosquitto-clients", "mosquitto_pub"),
    "chromium": ("chromium", "Chromium for browser tests and PDF printing"),
    "node": ("nodejs npm", "Node.js and npm for the peers in tests/peers"),
    "nginx": ("nginx", "nginx (the deployment tests run a private one in front of the web processes)"),
    "redis": ("redis-server", "Redis (live events and limits shared by web processes)"),
    "pango": ("libpango-1.0-0", "WeasyPrint's Pango (PDFs from the HTML page)"),
}


def _has(marker: str) -> bool:
    if marker == "mosquitto":
        return broker_kind() == "mosquitto"
    if marker == "mosquitto_clients":
        return shutil.which("mosquitto_pub") is not None
    if marker == "node":
        return shutil.which("node") is not None and shutil.which("npm") is not None
    if marker == "nginx":
        return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
    if marker == "redis":
        return shutil.which("redis-server") is not None
    if marker == "pango":
        try:
            import weasyprint  # noqa: F401 - loads Pango through cffi; OSError without it
        except (ImportError, OSError):
            return False
        return True
    return Path("/usr/bin/chromium").exists() or shutil.which("chromium") is not None


def broker_kind() -> str:
    """The broker tests get: ``WORKBENCH_TEST_BROKER=amqtt`` forces the in-process one (a fresh machine's)."""
    if os.environ.get("WORKBENCH_TEST_BROKER") == "amqtt":
        return "amqtt"
    found = shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()
    return "mosquitto" if found else "amqtt"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests whose system program is missing, saying which package brings it (never under CI)."""
    if os.environ.get("CI"):
        return
    for item in items:
        for marker, (package, what) in NEEDS.items():
            if item.get_closest_marker(marker) and not _has(marker):
                item.add_marker(pytest.mark.skip(reason=f"needs {what}: apt-get install {package}"))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """One screen at the end: how many tests were skipped for each reason, and what brings them back."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    reasons: collections.Counter[str] = collections.Counter()
    for report in skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    packages = sorted({package for package, _ in NEEDS.values() if any(package in r for r in reasons)})
    terminalreporter.write_sep("=", f"{len(skipped)} skipped, by reason", bold=True)
    for reason, count in reasons.most_common(12):
        terminalreporter.write_line(f"{count:4d}  {reason[:150]}")
    if len(reasons) > 12:
        terminalreporter.write_line(
            f"      ... and {len(reasons) - 12} other reasons (pytest -rs lists them)"
        )
    if packages:
        terminalreporter.write_line(f"To run them all: apt-get install {' '.join(packages)}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """Admin URL of a PostgreSQL server: ``WORKBENCH_TEST_DATABASE_URL``, else an embedded server."""
    configured = os.environ.get("WORKBENCH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    # The embedded server runs as a system user when we are root; /tmp is reachable for it.
    folder = Path(tempfile.mkdtemp(prefix="workbench-test-pg-"))
    server = EmbeddedPostgres(folder / "postgres")
    url = server.start(database="postgres")
    yield url
    server.stop()


@pytest.fixture(scope="session")
def database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped at the end."""
    name = f"wb_test_{uuid.uuid4().hex[:12]}"
    ensure_database(postgres_server_url, name)
    url = _with_database(postgres_server_url, name)
    upgrade(url)
    yield url
    with psycopg.connect(libpq_url(postgres_server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """A data directory for this test session."""
    return Path(tempfile.mkdtemp(prefix="workbench-test-data-"))


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: Path) -> Settings:
    """Settings pointing at the session's database and data directory."""
    return Settings.from_env({}, database_url=database_url, data_dir=data_dir, port=free_port())


@pytest.fixture(scope="session")
def app(settings: Settings) -> Flask:
    """The whole Flask app on the session's database."""
    from app import create_app

    application = create_app(settings)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@pytest.fixture(scope="session")
def mqtt_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MQTT broker for the session: ``WORKBENCH_TEST_MQTT_URL``, else a local one on a free port."""
    configured = os.environ.get("WORKBENCH_TEST_MQTT_URL")
    if configured:
        yield configured
        return
    from ingest.broker import LocalBroker

    # Opted into anonymous access: the tests' clients stand in for many devices and the platform at once.
    # The secure default (logins, own topics only) is tested in tests/ingest/test_broker_logins.py.
    broker = LocalBroker(
        free_port(),
        tmp_path_factory.mktemp("broker"),
        prefer_mosquitto=broker_kind() == "mosquitto",
        allow_anonymous=True,
    )
    yield broker.start()
    broker.stop()
