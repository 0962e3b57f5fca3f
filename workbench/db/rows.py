"""Row writes shared by the services and the REST blueprints."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, update


def update_returning(
    engine: Engine, table: Table, ident: uuid.UUID, values: dict[str, Any]
) -> dict[str, Any] | None:
    """Set ``values`` and ``updated_at`` on the row with id ``ident``; the new row, or None when absent."""
    with engine.begin() as conn:
        row = (
            conn.execute(
                update(table)
                .where(table.c.id == ident)
                .values(**values, updated_at=datetime.now(UTC))
                .returning(table)
            )
            .mappings()
            .first()
        )
    return None if row is None else dict(row)
