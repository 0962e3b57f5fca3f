"""Rule names are unique (case and outer spaces ignored); existing duplicates are renamed first.

A rule sharing its name with an older one becomes ``<name> (<first 8 characters of its id>)``: the oldest
keeps its name, the others stay findable, and no renamed rule can meet another's name.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

RENAME_DUPLICATES = """
WITH ranked AS (
    SELECT id, row_number() OVER (PARTITION BY lower(btrim(name)) ORDER BY created_at, id) AS n FROM rules
)
UPDATE rules SET name = left(btrim(rules.name), 244) || ' (' || left(rules.id::text, 8) || ')'
FROM ranked WHERE ranked.id = rules.id AND ranked.n > 1
"""


def upgrade() -> None:
    """Rename duplicate rule names, then add the unique index ``uq_rules_name``."""
    op.execute(RENAME_DUPLICATES)
    op.execute("CREATE UNIQUE INDEX uq_rules_name ON rules (lower(btrim(name)))")


def downgrade() -> None:
    """Drop ``uq_rules_name`` (renamed rules keep their new names)."""
    op.drop_index("uq_rules_name", table_name="rules")
