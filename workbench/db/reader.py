"""A read-only database login for Grafana and BI tools: telemetry, rollups, latest values, devices, alerts."""

from __future__ import annotations

import secrets

import psycopg
from psycopg import sql

# What a reader may SELECT; devices without their config and connection string (they may hold secrets).
READABLE = ("telemetry", "telemetry_1m", "telemetry_1h", "latest_values", "alerts")
DEVICE_COLUMNS = ("id", "name", "type", "location", "area", "protocol", "status", "last_seen", "created_at")
DEFAULT_ROLE = "workbench_reader"


def grant_reader(url: str, role: str = DEFAULT_ROLE, password: str | None = None) -> str:
    """Create or update login ``role``, able to read what Grafana needs and nothing else; its password."""
    password = password or secrets.token_urlsafe(24)
    name = sql.Identifier(role)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        conn.execute(
            sql.SQL("{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                verb, name, sql.Literal(password)
            )
        )
        database = sql.Identifier(conn.info.dbname)
        conn.execute(sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, name))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name))
        tables = sql.SQL(", ").join(sql.Identifier(table) for table in READABLE)
        conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(tables, name))
        columns = sql.SQL(", ").join(sql.Identifier(column) for column in DEVICE_COLUMNS)
        conn.execute(sql.SQL("GRANT SELECT ({}) ON devices TO {}").format(columns, name))
        # Even a mistaken grant later cannot make this login write, and a runaway panel query stops.
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET default_transaction_read_only = on").format(
                name, database
            )
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} IN DATABASE {} SET statement_timeout = '30s'").format(name, database)
        )
    return password
