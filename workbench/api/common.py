"""Shared pieces of the resource blueprints: strict schemas, paging, time ranges, 404s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint
from sqlalchemy import ColumnElement, FromClause, Table, select

from workbench.api.errors import ApiError
from workbench.api.protection import MAX_JSON_BODY, limit_body
from workbench.db.paging import page_rows
from workbench.db.rows import update_returning
from workbench.platform import current_platform

MAX_PAGE_SIZE = 500
# Python datetimes and PostgreSQL both hold these; anything else is a client error, not a 500.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def make_blueprint(
    name: str, url_prefix: str, description: str, max_body: int | None = MAX_JSON_BODY
) -> Blueprint:
    """A smorest blueprint under ``/api/v1`` with a body limit (``None``: only the app-wide cap)."""
    blueprint = Blueprint(name, __name__, url_prefix=f"/api/v1{url_prefix}", description=description)
    if max_body is not None:
        limit_body(blueprint, max_body)
    return blueprint


def query_args(blueprint: Blueprint, schema: type[ma.Schema]) -> Any:
    """``@blueprint.arguments`` for query strings that refuse unknown parameters (naming them)."""
    return blueprint.arguments(schema, location="query", unknown=ma.RAISE)


class Strict(ma.Schema):
    """Refuse unknown fields (marshmallow's RAISE), so typos are named instead of ignored."""

    class Meta:
        unknown = ma.RAISE


class Changes(Strict):
    """A PUT body: at least one field, so an empty or missing body is refused instead of changing nothing."""

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("send at least one field to change")


def Timestamp(**kwargs: Any) -> ma.fields.AwareDateTime:
    """An ISO 8601 instant; naive values are taken as UTC; limited to a range the database can hold."""
    return ma.fields.AwareDateTime(
        default_timezone=UTC, validate=ma.validate.Range(min=EARLIEST, max=LATEST), **kwargs
    )


class PageArgs(Strict):
    """Paging query parameters (1-based page, bounded page size)."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE))


class PageSchema(ma.Schema):
    """Paging facts returned beside ``items``."""

    page = ma.fields.Integer(required=True)
    page_size = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True)


def paged(items: list[Any], args: dict[str, Any], total: int) -> dict[str, Any]:
    """The list envelope: ``{"items", "page", "page_size", "total"}``."""
    return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


def offset_of(args: dict[str, Any]) -> int:
    """SQL offset of the requested page."""
    return int((args["page"] - 1) * args["page_size"])


def fetch_page(
    table: FromClause,
    where: Sequence[ColumnElement[bool]],
    order_by: Sequence[ColumnElement[Any]],
    args: dict[str, Any],
    columns: Sequence[ColumnElement[Any]] = (),
) -> dict[str, Any]:
    """The list envelope of one page of ``table`` (or its ``columns``) matching ``where``, rows as dicts."""
    engine = current_platform().engine
    rows, total = page_rows(engine, table, where, order_by, args["page"], args["page_size"], columns)
    return paged(rows, args, total)


def fetch_row(
    table: Table, ident: uuid.UUID, what: str, columns: Sequence[ColumnElement[Any]] = ()
) -> dict[str, Any]:
    """The row with id ``ident`` of ``table`` (or its ``columns``) as a dict, or 404 naming ``what``."""
    query = select(*columns) if columns else select(table)
    with current_platform().engine.connect() as conn:
        row = conn.execute(query.where(table.c.id == ident)).mappings().first()
    if row is None:
        raise not_found(what, ident)
    return dict(row)


def update_row(table: Table, ident: uuid.UUID, what: str, values: dict[str, Any]) -> dict[str, Any]:
    """Set ``values`` and ``updated_at`` on the row with id ``ident``; the new row, or 404 naming ``what``."""
    row = update_returning(current_platform().engine, table, ident, values)
    if row is None:
        raise not_found(what, ident)
    return row


def check_range(start: datetime | None, end: datetime | None) -> None:
    """400 naming ``end`` when a time range runs backwards."""
    if start is not None and end is not None and end <= start:
        raise ApiError(400, "bad_time_range", "end must be after start", {"fields": {"end": ["<= start"]}})


def not_found(what: str, ident: uuid.UUID | str) -> ApiError:
    """The 404 of a missing resource."""
    return ApiError(404, "not_found", f"{what} {ident} not found")


_FIELD_TYPES: dict[str, type[ma.fields.Field]] = {
    "UUID": ma.fields.UUID,
    "String": ma.fields.String,
    "Text": ma.fields.String,
    "Float": ma.fields.Float,
    "Integer": ma.fields.Integer,
    "BigInteger": ma.fields.Integer,
    "Boolean": ma.fields.Boolean,
    "DateTime": ma.fields.DateTime,
    "JSONB": ma.fields.Dict,
}


def row_schema(
    table: Table, name: str, doc: str, exclude: Sequence[str] = (), **fields: ma.fields.Field
) -> type[ma.Schema]:
    """The schema of ``table``'s rows as the API shows them: a field per column (NOT NULL ones required,
    the others nullable), minus ``exclude``, with ``fields`` replacing or adding some."""
    declared: dict[str, ma.fields.Field] = {}
    for column in table.columns:
        if column.key in exclude:
            continue
        kind = _FIELD_TYPES[type(column.type).__name__]
        declared[column.key] = kind(required=True) if not column.nullable else kind(allow_none=True)
    declared.update(fields)
    schema = ma.Schema.from_dict(declared, name=name)
    schema.__doc__ = doc
    return schema
