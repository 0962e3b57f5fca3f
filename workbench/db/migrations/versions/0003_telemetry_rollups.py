"""telemetry rollups: minute and hour partial aggregates for long-range charts and aggregates

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _create(name: str) -> None:
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        name,
        sa.Column("device_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("bucket", stamp, nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("sumsq", sa.Float(), nullable=False),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("min_at", stamp, nullable=False),
        sa.Column("max_at", stamp, nullable=False),
        sa.Column("first", sa.Float(), nullable=False),
        sa.Column("first_at", stamp, nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.Column("last_at", stamp, nullable=False),
        sa.PrimaryKeyConstraint("device_id", "key", "bucket", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    _create("telemetry_1m")
    _create("telemetry_1h")


def downgrade() -> None:
    op.drop_table("telemetry_1h")
    op.drop_table("telemetry_1m")
