"""One page of a table's rows and how many match in all: the list query of every service and endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Engine, FromClause, func, select


def page_rows(
    engine: Engine,
    table: FromClause,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any]],
    page: int,
    page_size: int,
    columns: Sequence[ColumnElement[Any]] = (),
) -> tuple[list[dict[str, Any]], int]:
    """Rows (as dicts) of 1-based ``page`` of ``table`` (or its ``columns``) matching ``where``; the total."""
    query = select(*columns) if columns else select(table)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()
        rows = conn.execute(
            query.where(*where).order_by(*order_by).limit(page_size).offset((page - 1) * page_size)
        ).mappings()
        return [dict(row) for row in rows], int(total)
