"""telemetry storage: TimescaleDB hypertable with compression and retention when the extension exists

Revision ID: 0002
Revises: 0001
"""

from alembic import context, op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    available = bind.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")).first()
    if not available:
        return  # plain PostgreSQL: the BRIN index and the composite btree of 0001 carry the load
    attributes = context.config.attributes
    compress_after = attributes.get("compress_after") or "7 days"
    retention = attributes.get("retention")
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    op.execute("DROP INDEX IF EXISTS idx_telemetry_time_brin")
    op.execute(
        "SELECT create_hypertable('telemetry', 'timestamp', chunk_time_interval => interval '1 day',"
        " migrate_data => true, if_not_exists => true)"
    )
    op.execute(
        "ALTER TABLE telemetry SET (timescaledb.compress, timescaledb.compress_segmentby = 'device_id, key',"
        " timescaledb.compress_orderby = 'timestamp DESC')"
    )
    op.execute(
        text(
            "SELECT add_compression_policy('telemetry', CAST(:after AS interval), if_not_exists => true)"
        ).bindparams(after=compress_after)
    )
    if retention:
        op.execute(
            text(
                "SELECT add_retention_policy('telemetry', CAST(:keep AS interval), if_not_exists => true)"
            ).bindparams(keep=retention)
        )


def downgrade() -> None:
    pass
