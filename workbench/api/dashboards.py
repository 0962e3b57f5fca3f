"""``/api/v1/dashboards``: CRUD; public ones are readable by every user, private ones by their owner."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import ColumnElement, delete, insert, select

from workbench.api.common import (
    Changes,
    PageArgs,
    PageSchema,
    Strict,
    fetch_page,
    make_blueprint,
    not_found,
    query_args,
    update_row,
)
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.dashboards import NOT_YOURS, may_edit, visible
from workbench.db.tables import dashboards
from workbench.platform import current_platform

blp = make_blueprint("dashboards", "/dashboards", "Dashboards: layout and widgets, public or private")


class DashboardFields(Strict):
    """What a client sets on a dashboard."""

    name = ma.fields.String(validate=ma.validate.Length(min=1, max=255))
    layout = ma.fields.Dict(keys=ma.fields.String())
    widgets = ma.fields.List(ma.fields.Dict(keys=ma.fields.String()), validate=ma.validate.Length(max=200))
    is_public = ma.fields.Boolean()


class DashboardChanges(DashboardFields, Changes):
    """Changes to a dashboard (at least one field)."""


class DashboardCreateSchema(DashboardFields):
    """A new dashboard."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    layout = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)
    widgets = ma.fields.List(
        ma.fields.Dict(keys=ma.fields.String()), load_default=list, validate=ma.validate.Length(max=200)
    )
    is_public = ma.fields.Boolean(load_default=False)


class DashboardSchema(ma.Schema):
    """A dashboard."""

    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    user_id = ma.fields.UUID(allow_none=True)
    layout = ma.fields.Dict(required=True)
    widgets = ma.fields.List(ma.fields.Dict(), required=True)
    is_public = ma.fields.Boolean(required=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class DashboardListArgs(PageArgs):
    """Filters of the dashboard list."""

    mine = ma.fields.Boolean(load_default=False, metadata={"description": "only dashboards I own"})


class DashboardPageSchema(PageSchema):
    """A page of dashboards."""

    items = ma.fields.List(ma.fields.Nested(DashboardSchema), required=True)


def _visible() -> ColumnElement[bool]:
    principal = current_principal()
    return visible(principal.role, principal.id)


def _load(dashboard_id: uuid.UUID, edit: bool) -> dict[str, Any]:
    with current_platform().engine.connect() as conn:
        row = conn.execute(select(dashboards).where(dashboards.c.id == dashboard_id, _visible())).first()
    if row is None:
        raise not_found("dashboard", dashboard_id)
    principal = current_principal()
    found = dict(row._mapping)
    if edit and not may_edit(principal.role, principal.id, found):
        raise ApiError(403, "forbidden", NOT_YOURS)
    return found


@blp.route("", methods=["GET"])
@require("dashboards:read")
@query_args(blp, DashboardListArgs)
@blp.response(200, DashboardPageSchema)
def list_dashboards(args: dict[str, Any]) -> dict[str, Any]:
    """Dashboards I may see (mine, public ones; all of them for engineers and admins)."""
    where = [_visible()]
    if args["mine"]:
        where.append(dashboards.c.user_id == current_principal().id)
    return fetch_page(dashboards, where, [dashboards.c.name, dashboards.c.id], args)


@blp.route("", methods=["POST"])
@require("dashboards:write")
@blp.arguments(DashboardCreateSchema)
@blp.response(201, DashboardSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a dashboard owned by the caller."""
    with current_platform().engine.begin() as conn:
        row = conn.execute(
            insert(dashboards).values(**body, user_id=current_principal().id).returning(dashboards)
        ).one()
    return dict(row._mapping)


@blp.route("/<uuid:dashboard_id>", methods=["GET"])
@require("dashboards:read")
@blp.response(200, DashboardSchema)
def get(dashboard_id: uuid.UUID) -> dict[str, Any]:
    """One dashboard (404 when private to someone else)."""
    return _load(dashboard_id, edit=False)


@blp.route("/<uuid:dashboard_id>", methods=["PUT"])
@require("dashboards:write")
@blp.arguments(DashboardChanges)
@blp.response(200, DashboardSchema)
def update_dashboard(body: dict[str, Any], dashboard_id: uuid.UUID) -> dict[str, Any]:
    """Change a dashboard (owner, engineer or admin)."""
    _load(dashboard_id, edit=True)
    return update_row(dashboards, dashboard_id, "dashboard", body)


@blp.route("/<uuid:dashboard_id>", methods=["DELETE"])
@require("dashboards:write")
@blp.response(204)
def delete_dashboard(dashboard_id: uuid.UUID) -> None:
    """Delete a dashboard (owner, engineer or admin)."""
    _load(dashboard_id, edit=True)
    with current_platform().engine.begin() as conn:
        conn.execute(delete(dashboards).where(dashboards.c.id == dashboard_id))
