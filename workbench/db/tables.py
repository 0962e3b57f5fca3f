"""SQLAlchemy Core tables: the design's schema (§2) plus what the platform needs around it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)


def _uuid_pk() -> Column:
    return Column("id", UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()"))


def _now(name: str) -> Column:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


users = Table(
    "users",
    metadata,
    _uuid_pk(),
    Column("email", String(255), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(50), nullable=False, server_default="viewer"),
    Column("permissions", JSONB),
    Column("disabled", Boolean, nullable=False, server_default=text("false")),
    _now("created_at"),
    Column("last_login", DateTime(timezone=True)),
    # The user's epoch: tokens and UI sessions carry it and are refused once it moves on.
    Column("token_version", Integer, nullable=False, server_default=text("0")),
    # The IANA zone the UI shows times in; NULL: the browser's.
    Column("timezone", String(64)),
)

devices = Table(
    "devices",
    metadata,
    _uuid_pk(),
    Column("name", String(255), nullable=False),
    Column("type", String(50), nullable=False),
    Column("location", String(255)),
    Column("area", String(100)),
    Column("protocol", String(50)),
    Column("connection_string", Text),
    Column("config", JSONB),
    Column("status", String(20), nullable=False, server_default="offline"),
    # Why a connector set the status (which OPC-UA nodes fail, by status code name); None when all is well.
    Column("status_detail", Text),
    Column("last_seen", DateTime(timezone=True)),
    Column("metadata", JSONB),
    _now("created_at"),
    _now("updated_at"),
    Index("idx_devices_status", "status"),
    Index("idx_devices_type", "type"),
    Index("idx_devices_area", "area"),
    Index("idx_devices_name", "name"),
    Index("idx_devices_protocol", "protocol"),
    Index("idx_devices_last_seen", "last_seen"),
    # Searches in names and locations (ILIKE '%text%'); migration 0010 makes them where pg_trgm exists.
    Index("idx_devices_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    Index(
        "idx_devices_location_trgm",
        "location",
        postgresql_using="gin",
        postgresql_ops={"location": "gin_trgm_ops"},
    ),
)

# Long format as in the design. One composite btree serves per-device, per-key time ranges (it also
# serves the design's (device_id, timestamp) lookups); BRIN keeps time scans cheap on plain PostgreSQL.
telemetry = Table(
    "telemetry",
    metadata,
    Column("timestamp", DateTime(timezone=True), nullable=False),
    # No foreign key: ingest validates the device before COPY, and a per-row RI check halves COPY speed.
    Column("device_id", UUID(as_uuid=True), nullable=False),
    Column("key", String(100), nullable=False),
    Column("value", Float),
    Column("unit", String(20)),
    Column("quality", Integer, server_default=text("100")),
    Column("metadata", JSONB),
    Column("text_value", Text),
    Index("idx_telemetry_device_key_time", "device_id", "key", text("timestamp DESC")),
    Index("idx_telemetry_time_brin", "timestamp", postgresql_using="brin"),
)

latest_values = Table(
    "latest_values",
    metadata,
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("value", Float),
    Column("unit", String(20)),
    Column("quality", Integer),
    Column("text_value", Text),
)

rules = Table(
    "rules",
    metadata,
    _uuid_pk(),
    Column("name", String(255), nullable=False),
    Column("description", Text),
    Column("type", String(30), nullable=False, server_default="threshold"),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE")),
    Column("target", JSONB),
    Column("condition", JSONB, nullable=False),
    Column("action", JSONB, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("priority", Integer, nullable=False, server_default=text("50")),
    Column("cooldown_seconds", Integer, nullable=False, server_default=text("300")),
    Column("auto_resolve", Boolean, nullable=False, server_default=text("true")),
    Column("last_triggered", DateTime(timezone=True)),
    Column("trigger_count", Integer, nullable=False, server_default=text("0")),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _now("created_at"),
    _now("updated_at"),
    Index("idx_rules_device", "device_id"),
    Index("idx_rules_enabled", "enabled"),
    # Rules need distinct names (case and outer spaces ignored): workbench.rules.service answers 409.
    Index("uq_rules_name", text("lower(btrim(name))"), unique=True),
)

rule_state = Table(
    "rule_state",
    metadata,
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("state", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    _now("updated_at"),
)

schedule_leases = Table(
    "schedule_leases",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("due_at", DateTime(timezone=True), primary_key=True),
    Column("holder", String(255), nullable=False),
    _now("taken_at"),
)

notebook_runs = Table(
    "notebook_runs",
    metadata,
    _uuid_pk(),
    Column("notebook", String(255), nullable=False),
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id", ondelete="SET NULL")),
    Column("report_id", UUID(as_uuid=True)),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(20), nullable=False, server_default="running"),
    Column("error", Text),
    Column("records", JSONB),
    Column("duration_ms", Float),
    Column("notebook_hash", String(64)),
    Column("output_path", Text),
    _now("started_at"),
    Column("finished_at", DateTime(timezone=True)),
    Index("idx_notebook_runs_rule", "rule_id", text("started_at DESC")),
)

alerts = Table(
    "alerts",
    metadata,
    _uuid_pk(),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE")),
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id", ondelete="SET NULL")),
    Column("severity", String(20), nullable=False, server_default="warning"),
    Column("message", Text),
    Column("key", String(100)),
    Column("value", Float),
    Column("threshold", Float),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("acknowledged_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("ack_comment", Text),
    Column("resolved_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolve_comment", Text),
    Column("triggered_at", DateTime(timezone=True)),
    Column("notebook_run_id", UUID(as_uuid=True), ForeignKey("notebook_runs.id", ondelete="SET NULL")),
    _now("created_at"),
    Column("metadata", JSONB),
    Index("idx_alerts_device", "device_id"),
    Index("idx_alerts_status", "status"),
    Index("idx_alerts_created", text("created_at DESC")),
    # The devices page's worst open alarm per device.
    Index(
        "idx_alerts_open_device",
        "device_id",
        "severity",
        postgresql_where=text("status IN ('active', 'acknowledged')"),
    ),
    # At most one open alert per rule and device: the database enforces what the engine intends.
    Index(
        "uq_alerts_open_rule_device",
        "rule_id",
        "device_id",
        unique=True,
        postgresql_where=text("status <> 'resolved' AND rule_id IS NOT NULL"),
    ),
)

dashboards = Table(
    "dashboards",
    metadata,
    _uuid_pk(),
    Column("name", String(255), nullable=False),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    Column("layout", JSONB, nullable=False),
    Column("widgets", JSONB, nullable=False),
    Column("is_public", Boolean, nullable=False, server_default=text("false")),
    _now("created_at"),
    _now("updated_at"),
)

api_keys = Table(
    "api_keys",
    metadata,
    _uuid_pk(),
    Column("key_hash", String(255), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False, server_default=""),
    Column("name", String(255), nullable=False),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE")),
    Column("permissions", JSONB),
    Column("rate_limit", Integer, nullable=False, server_default=text("1000")),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    _now("created_at"),
    Index("idx_api_keys_device", "device_id"),
)

revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(64), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    _now("revoked_at"),
)

# Signed-in UI sessions (the cookie holds only a random id; this row is the session).
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the id in the cookie
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("token_version", Integer, nullable=False),
    _now("created_at"),
    _now("last_seen"),
    Index("idx_user_sessions_user", "user_id"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("source", String(20), nullable=False),
    Column("topic", Text),
    Column("device_id", String(100)),
    Column("reason", Text, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("replayed_at", DateTime(timezone=True)),
    Index("idx_quarantine_received", text("received_at DESC")),
    Index("idx_quarantine_device", "device_id"),
)

# Commands to devices, delivered in the device's own protocol (MQTT JSON, Sparkplug DCMD/NCMD, Modbus and
# OPC-UA writes, OPC-UA method calls): pending -> sent -> acknowledged, or failed with the reason.
device_commands = Table(
    "device_commands",
    metadata,
    _uuid_pk(),
    Column("device_id", UUID(as_uuid=True), ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("command", String(100), nullable=False),
    Column("params", JSONB, nullable=False),
    Column("protocol", String(50), nullable=False),
    Column("status", String(20), nullable=False, server_default="pending"),
    Column("reason", Text),
    Column("result", JSONB),
    Column("issued_by", UUID(as_uuid=True)),
    _now("created_at"),
    _now("updated_at"),
    Index("idx_device_commands_device", "device_id", text("created_at DESC")),
    Index("idx_device_commands_pending", "created_at", postgresql_where=text("status = 'pending'")),
)

action_log = Table(
    "action_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("rule_id", UUID(as_uuid=True), ForeignKey("rules.id", ondelete="SET NULL")),
    Column("alert_id", UUID(as_uuid=True), ForeignKey("alerts.id", ondelete="SET NULL")),
    Column("action", String(30), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("error", Text),
    Column("detail", JSONB),
    _now("created_at"),
    Column("finished_at", DateTime(timezone=True)),
    Index("idx_action_log_created", text("created_at DESC")),
)

reports = Table(
    "reports",
    metadata,
    _uuid_pk(),
    Column("notebook", String(255), nullable=False),
    Column("format", String(10), nullable=False),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", String(20), nullable=False, server_default="queued"),
    Column("progress", Float, nullable=False, server_default=text("0")),
    Column("error", Text),
    Column("notebook_hash", String(64)),
    Column("data_hash", String(64)),
    Column("path", Text),
    Column("schedule_id", UUID(as_uuid=True)),
    Column("requested_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _now("created_at"),
    Column("finished_at", DateTime(timezone=True)),
    Index("idx_reports_created", text("created_at DESC")),
)

report_schedules = Table(
    "report_schedules",
    metadata,
    _uuid_pk(),
    Column("name", String(255), nullable=False),
    Column("notebook", String(255), nullable=False),
    Column("format", String(10), nullable=False),
    Column("cron", String(100), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("parameters", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("recipients", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("last_run", DateTime(timezone=True)),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _now("created_at"),
)


def _rollup(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("device_id", UUID(as_uuid=True), primary_key=True),
        Column("key", String(100), primary_key=True),
        Column("bucket", DateTime(timezone=True), primary_key=True),
        Column("count", BigInteger, nullable=False),
        Column("sum", Float, nullable=False),
        Column("sumsq", Float, nullable=False),
        Column("min", Float, nullable=False),
        Column("max", Float, nullable=False),
        Column("min_at", DateTime(timezone=True), nullable=False),
        Column("max_at", DateTime(timezone=True), nullable=False),
        Column("first", Float, nullable=False),
        Column("first_at", DateTime(timezone=True), nullable=False),
        Column("last", Float, nullable=False),
        Column("last_at", DateTime(timezone=True), nullable=False),
    )


# Minute and hour rollups of numeric telemetry (workbench/db/rollups.py keeps them current).
telemetry_1m = _rollup("telemetry_1m")
telemetry_1h = _rollup("telemetry_1h")

# How far each imported series has come (ingest/importers): imports resume, reruns add nothing. ``rows`` is
# counted per series by the JSON import; the database import copies time slices across series and leaves it 0.
import_checkpoints = Table(
    "import_checkpoints",
    metadata,
    Column("source", String(255), primary_key=True),
    Column("series", String(255), primary_key=True),
    Column("last_ts", BigInteger, nullable=False),
    Column("rows", BigInteger, nullable=False, server_default=text("0")),
    _now("updated_at"),
)

# Named, scoped, expiring credentials for machines (historians, BI tools, Grafana, scripts): shown once.
service_tokens = Table(
    "service_tokens",
    metadata,
    _uuid_pk(),
    Column("name", String(255), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scopes", JSONB, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("last_used", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("created_by", UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")),
    _now("created_at"),
)
