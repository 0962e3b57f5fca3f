"""``/api/v1/alerts``: list (status, severity, device, rule, time; paged), get, acknowledge, resolve."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import func

from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    Timestamp,
    fetch_page,
    fetch_row,
    make_blueprint,
    not_found,
    query_args,
    row_schema,
)
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.db.tables import alerts
from workbench.platform import current_platform
from workbench.rules import alerts as alert_rows
from workbench.severity import SEVERITIES

# Only the app-wide body cap applies here (unchanged from before these routes used workbench.api.common).
blp = make_blueprint("alerts", "/alerts", "Alerts: list, acknowledge, resolve", max_body=None)
STATUSES = ("active", "acknowledged", "resolved", "open")


AlertSchema = row_schema(alerts, "AlertSchema", "An alert as the API shows it.")


class AlertListArgs(PageArgs):
    """Filters of the alert list (``status=open``: active or acknowledged)."""

    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    severity = ma.fields.String(validate=ma.validate.OneOf(SEVERITIES))
    device_id = ma.fields.UUID()
    rule_id = ma.fields.UUID()
    start = Timestamp(metadata={"description": "triggered at or after"})
    end = Timestamp(metadata={"description": "triggered before"})


class AlertPageSchema(PageSchema):
    """A page of alerts, newest first."""

    items = ma.fields.List(ma.fields.Nested(AlertSchema), required=True)


class CommentSchema(Strict):
    """Who acts is the caller; what they say is the comment."""

    comment = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=2000))


@blp.route("", methods=["GET"])
@require("alerts:read")
@query_args(blp, AlertListArgs)
@blp.response(200, AlertPageSchema)
def list_alerts(args: dict[str, Any]) -> dict[str, Any]:
    """Alerts, newest first, filtered by status, severity, device, rule and trigger time."""
    where = alert_rows.list_filter(
        args.get("status"),
        args.get("severity"),
        args.get("device_id"),
        args.get("rule_id"),
        args.get("start"),
        args.get("end"),
    )
    principal = current_principal()
    if principal.is_device:
        where = where & (alerts.c.device_id == principal.device_id)
    when = func.coalesce(alerts.c.triggered_at, alerts.c.created_at)
    return fetch_page(alerts, [where], [when.desc(), alerts.c.id], args)


@blp.route("/<uuid:alert_id>", methods=["GET"])
@require("alerts:read")
@blp.response(200, AlertSchema)
def get(alert_id: uuid.UUID) -> dict[str, Any]:
    """One alert."""
    row = fetch_row(alerts, alert_id, "alert")
    if not current_principal().may_touch_device(row["device_id"]):
        raise not_found("alert", alert_id)
    return row


def _transition(alert_id: uuid.UUID, status: str, comment: str | None) -> dict[str, Any]:
    platform = current_platform()
    principal = current_principal()
    try:
        row = alert_rows.change(platform, alert_id, status, principal.id, comment)
    except ValueError as error:
        raise ApiError(409, "conflict", str(error)) from None
    if row is None:
        raise not_found("alert", alert_id)
    return row


@blp.route("/<uuid:alert_id>/ack", methods=["PUT"])
@require("alerts:ack")
@blp.arguments(CommentSchema)
@blp.response(200, AlertSchema)
def acknowledge(body: dict[str, Any], alert_id: uuid.UUID) -> dict[str, Any]:
    """Acknowledge an active alert (who and when are recorded, with the comment)."""
    return _transition(alert_id, "acknowledged", body.get("comment"))


@blp.route("/<uuid:alert_id>/resolve", methods=["PUT"])
@require("alerts:ack")
@blp.arguments(CommentSchema)
@blp.response(200, AlertSchema)
def resolve(body: dict[str, Any], alert_id: uuid.UUID) -> dict[str, Any]:
    """Resolve an active or acknowledged alert by hand."""
    return _transition(alert_id, "resolved", body.get("comment"))
