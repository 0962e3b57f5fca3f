"""user epoch and server-side UI sessions: access ends when a user is changed, disabled or removed

Revision ID: 0004_user_epoch
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_user_epoch"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Bumped on password, role or disabled changes: tokens and sessions carrying an older value are refused.
    op.add_column("users", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
    stamp = sa.DateTime(timezone=True)
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", stamp, server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen", stamp, server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    op.create_index("idx_user_sessions_user", "user_sessions", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index("idx_user_sessions_user", table_name="user_sessions")
    op.drop_table("user_sessions")
    op.drop_column("users", "token_version")
