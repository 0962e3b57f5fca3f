"""``/api/v1/rules``: rules CRUD (validated, errors name the field) and backtesting (``/rules/{id}/test``)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import marshmallow as ma
from sqlalchemy import delete

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
)
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.db.tables import rules
from workbench.platform import current_platform
from workbench.rules import service
from workbench.rules.backtest import InvalidRule, run_backtest
from workbench.rules.engine import RULES_CHANGED
from workbench.rules.types import Rule, rule_types
from workbench.secrets import redact_actions

# Only the app-wide body cap applies here (unchanged from before these routes used workbench.api.common).
blp = make_blueprint(
    "rules", "/rules", "Rules: threshold, comparison, statistical and schedule; backtesting", max_body=None
)
MAX_BACKTEST = timedelta(days=93)


# An action ({type, ...}) or a list of them, described fully so generated clients type it.
_ACTION = {
    "type": "object",
    "required": ["type"],
    "properties": {"type": {"type": "string"}},
    "additionalProperties": {},
}
ACTION_DOC = {"oneOf": [_ACTION, {"type": "array", "items": _ACTION}]}
# What a read may show: also no action at all ({}), as rules stored without one (by SQL, say) have.
_NO_ACTION = {"type": "object", "maxProperties": 0}
ACTION_READ_DOC = {"oneOf": [_ACTION, {"type": "array", "items": _ACTION}, _NO_ACTION]}


class RuleFields(Strict):
    """Fields of a rule a client sets (checked further by the rule type and action plugins)."""

    name = ma.fields.String(validate=ma.validate.Length(min=1, max=255))
    description = ma.fields.String(allow_none=True)
    type = ma.fields.String(metadata={"description": "threshold, comparison, statistical, schedule, ..."})
    device_id = ma.fields.UUID(allow_none=True)
    target = ma.fields.Dict(
        allow_none=True,
        metadata={
            "description": "one of {device_id}, {device_ids: [...]}, {device_type}, {area}, {all: true}"
        },
    )
    condition = ma.fields.Dict(metadata={"description": "the rule type's condition (design §5.1)"})
    action = ma.fields.Raw(
        metadata={"description": "an action object {type, ...} or a list of them (§5.2)", **ACTION_DOC}
    )
    enabled = ma.fields.Boolean()
    priority = ma.fields.Integer(validate=ma.validate.Range(min=0, max=1000))
    cooldown_seconds = ma.fields.Integer(validate=ma.validate.Range(min=0, max=30 * 86400))
    auto_resolve = ma.fields.Boolean()


class RuleCreateSchema(RuleFields):
    """A new rule."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    type = ma.fields.String(required=True)
    condition = ma.fields.Dict(required=True)
    action = ma.fields.Raw(required=True, metadata=ACTION_DOC)


class RuleSchema(ma.Schema):
    """A rule as the API shows it."""

    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(allow_none=True)
    type = ma.fields.String(required=True)
    device_id = ma.fields.UUID(allow_none=True)
    target = ma.fields.Dict(allow_none=True)
    condition = ma.fields.Dict(required=True)
    action = ma.fields.Raw(required=True, metadata=ACTION_READ_DOC)
    enabled = ma.fields.Boolean(required=True)
    priority = ma.fields.Integer(required=True)
    cooldown_seconds = ma.fields.Integer(required=True)
    auto_resolve = ma.fields.Boolean(required=True)
    last_triggered = ma.fields.DateTime(allow_none=True)
    trigger_count = ma.fields.Integer(required=True)
    created_by = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    updated_at = ma.fields.DateTime(required=True)


class RuleListArgs(PageArgs):
    """Filters of the rule list."""

    type = ma.fields.String(validate=ma.validate.Length(max=30))
    enabled = ma.fields.Boolean()


class RulePageSchema(PageSchema):
    """A page of rules."""

    items = ma.fields.List(ma.fields.Nested(RuleSchema), required=True)


class BacktestArgs(Strict):
    """The historical range to run the rule over."""

    start = Timestamp(required=True)
    end = Timestamp(required=True)


class WouldBeAlertSchema(ma.Schema):
    """An alert the rule would have raised (not stored)."""

    device_id = ma.fields.String(required=True)
    severity = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    key = ma.fields.String(allow_none=True)
    value = ma.fields.Float(allow_none=True)
    threshold = ma.fields.Float(allow_none=True)
    triggered_at = ma.fields.DateTime(required=True)
    resolved_at = ma.fields.DateTime(allow_none=True)
    notebook_run_id = ma.fields.UUID(
        allow_none=True,
        metadata={"description": "notebook rules: the dry run's executed notebook (/notebook-runs/{id})"},
    )


class BacktestSchema(ma.Schema):
    """What a backtest found."""

    rule_id = ma.fields.UUID(required=True)
    start = ma.fields.DateTime(required=True)
    end = ma.fields.DateTime(required=True)
    points = ma.fields.Integer(required=True, metadata={"description": "stored points evaluated"})
    truncated = ma.fields.Boolean(required=True)
    alerts = ma.fields.List(ma.fields.Nested(WouldBeAlertSchema), required=True)
    runs = ma.fields.List(ma.fields.String(), required=True, metadata={"description": "schedule due times"})


class TypesSchema(ma.Schema):
    """Registered rule types and action plugins."""

    types = ma.fields.List(ma.fields.String(), required=True)
    actions = ma.fields.Dict(required=True, metadata={"description": "plugin -> configuration JSON Schema"})


def _row(rule_id: uuid.UUID) -> dict[str, Any]:
    return fetch_row(rules, rule_id, "rule")


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A rule as every role reads it: action secrets and header values only as ``{"set": true}``."""
    return {**row, "action": redact_actions(row.get("action"))}


@blp.route("", methods=["GET"])
@require("rules:read")
@query_args(blp, RuleListArgs)
@blp.response(200, RulePageSchema)
def list_rules(args: dict[str, Any]) -> dict[str, Any]:
    """Rules, highest priority first, filtered by type or enabled."""
    where = [rules.c[k] == args[k] for k in ("type", "enabled") if k in args]
    page = fetch_page(rules, where, [rules.c.priority.desc(), rules.c.name, rules.c.id], args)
    return {**page, "items": [_shown(item) for item in page["items"]]}


@blp.route("/types", methods=["GET"])
@require("rules:read")
@blp.response(200, TypesSchema)
def list_types() -> dict[str, Any]:
    """Registered rule types and action plugins, with the actions' configuration schemas."""
    from workbench.rules.actions import actions

    return {
        "types": sorted(rule_types()),
        "actions": {name: plugin.configuration_schema() for name, plugin in sorted(actions().items())},
    }


@blp.route("", methods=["POST"])
@require("rules:write")
@blp.arguments(RuleCreateSchema)
@blp.response(201, RuleSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a rule (validated by its type and its actions' plugins; 409 when another rule has its name);
    action secrets stored sealed."""
    principal = current_principal()
    created_by = None if principal.is_device else principal.id
    return _shown(service.create_rule(current_platform(), body, created_by))


@blp.route("/<uuid:rule_id>", methods=["GET"])
@require("rules:read")
@blp.response(200, RuleSchema)
def get(rule_id: uuid.UUID) -> dict[str, Any]:
    """One rule (action secrets shown as set, never read back)."""
    return _shown(_row(rule_id))


@blp.route("/<uuid:rule_id>", methods=["PUT"])
@require("rules:write")
@blp.arguments(RuleFields)
@blp.response(200, RuleSchema)
def update_rule(body: dict[str, Any], rule_id: uuid.UUID) -> dict[str, Any]:
    """Change a rule's fields (only those sent); the whole rule is validated again (409: a name in use)."""
    return _shown(service.update_rule(current_platform(), rule_id, body))


@blp.route("/<uuid:rule_id>", methods=["DELETE"])
@require("rules:write")
@blp.response(204)
def delete_rule(rule_id: uuid.UUID) -> None:
    """Delete a rule (its alerts stay, without the link)."""
    with current_platform().engine.begin() as conn:
        if conn.execute(delete(rules).where(rules.c.id == rule_id)).rowcount == 0:
            raise not_found("rule", rule_id)
    current_platform().bus.publish(RULES_CHANGED, str(rule_id))


@blp.route("/<uuid:rule_id>/test", methods=["POST"])
@require("rules:read")
@blp.arguments(BacktestArgs)
@blp.response(200, BacktestSchema)
def test_rule(body: dict[str, Any], rule_id: uuid.UUID) -> dict[str, Any]:
    """Backtest: the alerts the rule would have raised over [start, end), raising none. A stored rule whose
    condition does not validate (notebook parameters that are not data, say) answers 422, running nothing."""
    start, end = body["start"], body["end"]
    if end <= start:
        raise ApiError(400, "bad_time_range", "end must be after start", {"fields": {"end": ["<= start"]}})
    if end - start > MAX_BACKTEST:
        raise ApiError(
            400, "bad_time_range", "a backtest covers at most 93 days", {"fields": {"end": ["too far"]}}
        )
    rule = Rule.from_row(_row(rule_id))
    try:
        result = run_backtest(current_platform(), rule, start, end)
    except InvalidRule as error:
        raise service.invalid(error.errors) from None
    return {"rule_id": rule_id, "start": start, "end": end, **result}
