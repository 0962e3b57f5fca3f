"""Indexes for the devices page: sort by name, protocol or last contact; open alarms per device; and, where
the ``pg_trgm`` extension exists, trigram indexes so a search in names and locations does not scan the table.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the device list's indexes."""
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).first():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for column in ("name", "location"):
            op.create_index(
                f"idx_devices_{column}_trgm",
                "devices",
                [column],
                postgresql_using="gin",
                postgresql_ops={column: "gin_trgm_ops"},
            )
    op.create_index("idx_devices_name", "devices", ["name"])
    op.create_index("idx_devices_protocol", "devices", ["protocol"])
    op.create_index("idx_devices_last_seen", "devices", ["last_seen"])
    op.create_index(
        "idx_alerts_open_device",
        "alerts",
        ["device_id", "severity"],
        postgresql_where=sa.text("status IN ('active', 'acknowledged')"),
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_index("idx_alerts_open_device", "alerts")
    op.drop_index("idx_devices_last_seen", "devices")
    op.drop_index("idx_devices_protocol", "devices")
    op.drop_index("idx_devices_name", "devices")
    op.execute("DROP INDEX IF EXISTS idx_devices_location_trgm")
    op.execute("DROP INDEX IF EXISTS idx_devices_name_trgm")
