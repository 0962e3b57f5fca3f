"""Schema helpers of the rules and alerts blueprints (the same shapes as ``workbench.api``'s resources:
strict bodies, 1-based paging with ``{"items", "page", "page_size", "total"}``, aware ISO 8601 instants)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask_smorest import Blueprint

from workbench.api.errors import ApiError

MAX_PAGE_SIZE = 500
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def make_blueprint(name: str, url_prefix: str, description: str) -> Blueprint:
    """A smorest blueprint under ``/api/v1``."""
    return Blueprint(name, __name__, url_prefix=f"/api/v1{url_prefix}", description=description)


def query_args(blueprint: Blueprint, schema: type[ma.Schema]) -> Any:
    """``@blueprint.arguments`` for query strings that refuse unknown parameters."""
    return blueprint.arguments(schema, location="query", unknown=ma.RAISE)


class Strict(ma.Schema):
    """Refuse unknown fields, so typos are named instead of ignored."""

    class Meta:
        unknown = ma.RAISE


def Timestamp(**kwargs: Any) -> ma.fields.AwareDateTime:
    """An ISO 8601 instant; naive values are taken as UTC."""
    return ma.fields.AwareDateTime(
        default_timezone=UTC, validate=ma.validate.Range(min=EARLIEST, max=LATEST), **kwargs
    )


class PageArgs(Strict):
    """Paging query parameters."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE))


class PageSchema(ma.Schema):
    """Paging facts returned beside ``items``."""

    page = ma.fields.Integer(required=True)
    page_size = ma.fields.Integer(required=True)
    total = ma.fields.Integer(required=True)


def paged(items: list[Any], args: dict[str, Any], total: int) -> dict[str, Any]:
    """The list envelope."""
    return {"items": items, "page": args["page"], "page_size": args["page_size"], "total": total}


def offset_of(args: dict[str, Any]) -> int:
    """SQL offset of the requested page."""
    return int((args["page"] - 1) * args["page_size"])


def not_found(what: str, ident: Any) -> ApiError:
    """The 404 of a missing resource."""
    return ApiError(404, "not_found", f"{what} {ident} not found")
