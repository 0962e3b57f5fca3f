"""Databases made and dropped on a server (benchmarks and tests that need one of their own)."""

from __future__ import annotations

import psycopg
from sqlalchemy import create_engine, inspect

from workbench.db.embedded import scratch_database
from workbench.db.engine import libpq_url, sqlalchemy_url


def _exists(server: str, name: str) -> bool:
    with psycopg.connect(libpq_url(server), autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_a_scratch_database_is_migrated_and_dropped_afterwards(postgres_server_url: str) -> None:
    with scratch_database(postgres_server_url, "wb_scratch") as url:
        name = url.rsplit("/", 1)[1].split("?")[0]
        assert name.startswith("wb_scratch_") and _exists(postgres_server_url, name)
        engine = create_engine(sqlalchemy_url(url))
        try:
            assert {"devices", "telemetry", "alembic_version"} <= set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
    assert not _exists(postgres_server_url, name)
