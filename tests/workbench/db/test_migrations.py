"""Migrations create every table of the design and what the platform adds."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect

from workbench.db.engine import sqlalchemy_url
from workbench.db.migrate import upgrade
from workbench.db.tables import metadata

DESIGN_TABLES = {"devices", "telemetry", "alerts", "rules", "dashboards", "api_keys", "users"}
PLATFORM_TABLES = {"notebook_runs", "reports", "quarantine", "revoked_tokens", "action_log", "latest_values"}


def test_every_table_exists(database_url: str) -> None:
    inspector = inspect(create_engine(sqlalchemy_url(database_url)))
    tables = set(inspector.get_table_names())
    assert tables >= DESIGN_TABLES | PLATFORM_TABLES
    assert set(metadata.tables) <= tables


def test_design_indexes_and_defaults(database_url: str) -> None:
    inspector = inspect(create_engine(sqlalchemy_url(database_url)))
    device_indexes = {index["name"] for index in inspector.get_indexes("devices")}
    assert {"idx_devices_status", "idx_devices_type", "idx_devices_area"} <= device_indexes
    alert_indexes = {index["name"] for index in inspector.get_indexes("alerts")}
    assert {"idx_alerts_device", "idx_alerts_status", "idx_alerts_created"} <= alert_indexes
    columns = {column["name"]: column for column in inspector.get_columns("rules")}
    assert "300" in str(columns["cooldown_seconds"]["default"])
    assert "50" in str(columns["priority"]["default"])


def test_upgrade_is_idempotent(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)


def test_schema_matches_tables(database_url: str) -> None:
    """The migrations and the SQLAlchemy tables describe the same schema (no drift)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(sqlalchemy_url(database_url))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []
