"""Rules as a resource: create, change, enable and check a rule (its fields, its actions' secrets, a name no
other rule has), and the event that makes the engine reload. The REST API and the Rules page both call these.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.db.tables import latest_values, rules
from workbench.errors import ApiError
from workbench.live.bus import RULES_CHANGED
from workbench.platform import Platform
from workbench.rules.validation import validate_rule
from workbench.secrets import merge_actions, open_actions

# What a client may set on a rule (the rest is the engine's: trigger counts, times).
EDITABLE = (
    "name",
    "description",
    "type",
    "device_id",
    "target",
    "condition",
    "action",
    "enabled",
    "priority",
    "cooldown_seconds",
    "auto_resolve",
)
# The unique index behind "rules need distinct names" (migration 0009): case and outer spaces ignored.
NAME_INDEX = "uq_rules_name"


def invalid(errors: dict[str, str]) -> ApiError:
    """The 422 of a rule that does not validate, each error under its field."""
    return ApiError(
        422,
        "unprocessable_entity",
        "invalid rule: " + ", ".join(sorted(errors)),
        {"fields": {name: [message] for name, message in errors.items()}},
    )


def name_taken(name: str) -> ApiError:
    """The 409 of a name another rule carries."""
    message = f"a rule named {name.strip()!r} exists: rules need distinct names"
    return ApiError(409, "conflict", message, {"fields": {"name": [message]}})


def message(error: ApiError) -> str:
    """An error as one line a form shows: each field with its reason."""
    fields = (error.details or {}).get("fields") if isinstance(error.details, dict) else None
    if not fields:
        return error.message
    return "; ".join(f"{name}: {' '.join(reasons)}" for name, reasons in fields.items())


def _other_named(conn: Connection, name: str, rule_id: uuid.UUID | None) -> bool:
    query = select(rules.c.id).where(func.lower(func.btrim(rules.c.name)) == name.strip().lower())
    if rule_id is not None:
        query = query.where(rules.c.id != rule_id)
    return conn.execute(query.limit(1)).first() is not None


def _device_from_target(body: dict[str, Any]) -> None:
    """``device_id`` mirrors ``target.device_id`` (one device); another kind of target clears it."""
    target = body.get("target")
    if "target" not in body or not isinstance(target, dict):
        return
    named = target.get("device_id")
    if named is None:
        if body.get("device_id") is None:
            body["device_id"] = None
        return
    try:
        device = uuid.UUID(str(named))
    except ValueError:
        raise invalid({"target": "device_id must be a UUID"}) from None
    if body.get("device_id") is not None and str(body["device_id"]) != str(device):
        raise invalid({"device_id": "differs from target.device_id"})
    body["device_id"] = device


def _checked(platform: Platform, document: dict[str, Any]) -> None:
    """Validate a whole rule (its action secrets opened, as the plugins see them); 422 naming the fields."""
    shown = {k: (str(v) if isinstance(v, uuid.UUID) else v) for k, v in document.items()}
    if "action" in shown:
        shown["action"] = open_actions(shown["action"], platform.settings.resolved_secret_key())
    errors = validate_rule(shown)
    if errors:
        raise invalid(errors)


def _as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise invalid({"device_id": "must be a UUID"}) from None


def _write(platform: Platform, name: str, run: Any) -> dict[str, Any]:
    """Run ``run(conn)`` in a transaction; a name taken meanwhile (the unique index) answers 409 too."""
    try:
        with platform.engine.begin() as conn:
            row: dict[str, Any] | None = run(conn)
    except IntegrityError as error:
        if NAME_INDEX in str(error.orig):
            raise name_taken(name) from None
        raise
    if row is None:
        raise ApiError(404, "not_found", "rule not found")
    platform.bus.publish(RULES_CHANGED, str(row["id"]))
    return row


def create_rule(platform: Platform, body: dict[str, Any], created_by: uuid.UUID | None) -> dict[str, Any]:
    """Store a new rule (validated by its type and its actions' plugins, its name unused; action secrets
    sealed); returns its row. :class:`ApiError` 422 names the invalid fields, 409 a name in use."""
    body = dict(body)
    body["action"] = merge_actions(body.get("action"), None, platform.settings.resolved_secret_key())
    _device_from_target(body)
    body["device_id"] = _as_uuid(body.get("device_id"))
    _checked(platform, body)
    name = str(body["name"]).strip()

    def run(conn: Connection) -> dict[str, Any]:
        if _other_named(conn, name, None):
            raise name_taken(name)
        statement = insert(rules).values(**{**body, "name": name}, created_by=created_by).returning(rules)
        return dict(conn.execute(statement).mappings().one())

    return _write(platform, name, run)


def update_rule(platform: Platform, rule_id: uuid.UUID, body: dict[str, Any]) -> dict[str, Any]:
    """Change the fields sent (secrets not sent are kept); the whole rule is validated again and its name
    must stay unused by another rule. 404 for an unknown rule."""
    with platform.engine.connect() as conn:
        current = conn.execute(select(rules).where(rules.c.id == rule_id)).mappings().first()
    if current is None:
        raise ApiError(404, "not_found", f"rule {rule_id} not found")
    body = dict(body)
    if "action" in body:  # secrets not sent (or sent back as {"set": true}) are kept
        key = platform.settings.resolved_secret_key()
        body["action"] = merge_actions(body["action"], current["action"], key)
    _device_from_target(body)
    if "device_id" in body:
        body["device_id"] = _as_uuid(body["device_id"])
    if "name" in body and isinstance(body["name"], str):
        body["name"] = body["name"].strip()
    merged = {k: current[k] for k in EDITABLE}
    merged.update(body)
    _checked(platform, merged)
    name = str(merged["name"])

    def run(conn: Connection) -> dict[str, Any] | None:
        if "name" in body and _other_named(conn, name, rule_id):
            raise name_taken(name)
        statement = (
            update(rules)
            .where(rules.c.id == rule_id)
            .values(**body, updated_at=datetime.now(UTC))
            .returning(rules)
        )
        found = conn.execute(statement).mappings().first()
        return dict(found) if found is not None else None

    return _write(platform, name, run)


def set_enabled(platform: Platform, rule_id: uuid.UUID, enabled: bool) -> dict[str, Any]:
    """Turn a rule on or off, nothing else changing (a rule stored invalid, by SQL say, can still be turned
    off); its new row, 404 for an unknown rule."""

    def run(conn: Connection) -> dict[str, Any] | None:
        statement = (
            update(rules)
            .where(rules.c.id == rule_id)
            .values(enabled=enabled, updated_at=datetime.now(UTC))
            .returning(rules)
        )
        found = conn.execute(statement).mappings().first()
        return dict(found) if found is not None else None

    return _write(platform, "", run)


def unsent_keys(platform: Platform, device_ids: list[str], keys: list[str]) -> dict[str, list[str]]:
    """Per key that no target device ever sent, the keys those devices do send (empty: all were sent)."""
    ids = [uuid.UUID(d) for d in device_ids if d]
    wanted = [k for k in keys if k]
    if not ids or not wanted:
        return {}
    with platform.engine.connect() as conn:  # the primary: a device just created counts
        sent = sorted(
            conn.execute(
                select(latest_values.c.key).where(latest_values.c.device_id.in_(ids)).distinct()
            ).scalars()
        )
    return {key: sent for key in wanted if key not in sent}
