"""A user's time zone: the UI shows every timestamp in it (NULL: the browser's zone).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``users.timezone``."""
    op.add_column("users", sa.Column("timezone", sa.String(64)))


def downgrade() -> None:
    """Drop ``users.timezone``."""
    op.drop_column("users", "timezone")
