"""Indexes for the devices page: sort by name, protocol or last contact; open alarms per device.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the device list's indexes."""
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
