"""Import checkpoints: how far each imported series has come, so imports resume and reruns add nothing.

Revision ID: 0005
Revises: 0004_user_epoch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004_user_epoch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``import_checkpoints``."""
    op.create_table(
        "import_checkpoints",
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("series", sa.String(255), nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("source", "series", name="pk_import_checkpoints"),
    )


def downgrade() -> None:
    """Drop ``import_checkpoints``."""
    op.drop_table("import_checkpoints")
