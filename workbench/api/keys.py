"""``/api/v1/keys``: device API keys: create (shown once), list, revoke, rotate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from sqlalchemy import select

from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    Timestamp,
    fetch_page,
    fetch_row,
    make_blueprint,
    query_args,
    row_schema,
)
from workbench.api.errors import ApiError
from workbench.auth import api_keys
from workbench.auth.guard import require
from workbench.db.tables import api_keys as keys_table
from workbench.db.tables import devices
from workbench.platform import current_platform

blp = make_blueprint("keys", "/keys", "Device API keys")


class KeyPermissionsSchema(Strict):
    """What a key may do."""

    read = ma.fields.Boolean(load_default=True)
    write = ma.fields.Boolean(load_default=True)


class KeyCreateSchema(Strict):
    """A new key for a device."""

    device_id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    permissions = ma.fields.Nested(KeyPermissionsSchema, load_default=lambda: {"read": True, "write": True})
    rate_limit = ma.fields.Integer(load_default=1000, validate=ma.validate.Range(min=1, max=10_000_000))
    expires_at = Timestamp(allow_none=True, load_default=None)

    @ma.validates("expires_at")
    def _in_the_future(self, value: datetime | None, **kwargs: Any) -> None:
        if value is not None and value <= datetime.now(UTC):
            raise ma.ValidationError("must be in the future (a key born expired is useless)")


KeySchema = row_schema(
    keys_table,
    "KeySchema",
    "A key as listed (never the secret; ``prefix`` helps to recognise it).",
    ("key_hash",),
)
CreatedKeySchema = row_schema(
    keys_table,
    "CreatedKeySchema",
    "A new key with its secret, shown this once.",
    exclude=("key_hash",),
    api_key=ma.fields.String(required=True, metadata={"description": "shown once; stored only hashed"}),
)


class KeyListArgs(PageArgs):
    """Filters of the key list."""

    device_id = ma.fields.UUID()
    include_revoked = ma.fields.Boolean(load_default=False)


class KeyPageSchema(PageSchema):
    """A page of keys."""

    items = ma.fields.List(ma.fields.Nested(KeySchema), required=True)


_COLUMNS = [c for c in keys_table.c if c.name != "key_hash"]


def _key(key_id: uuid.UUID) -> dict[str, Any]:
    return fetch_row(keys_table, key_id, "API key", _COLUMNS)


def _issue(
    device_id: uuid.UUID, name: str, permissions: Any, rate_limit: int, expires: Any
) -> dict[str, Any]:
    engine = current_platform().engine
    with engine.connect() as conn:
        if conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first() is None:
            raise ApiError(
                404, "not_found", f"device {device_id} not found", {"fields": {"device_id": ["?"]}}
            )
    key_id, raw = api_keys.create_key(engine, device_id, name, permissions, rate_limit, expires)
    return {**_key(key_id), "api_key": raw}


@blp.route("", methods=["GET"])
@require("keys:manage")
@query_args(blp, KeyListArgs)
@blp.response(200, KeyPageSchema)
def list_keys(args: dict[str, Any]) -> dict[str, Any]:
    """Keys, newest first, optionally of one device and including revoked ones."""
    where = []
    if "device_id" in args:
        where.append(keys_table.c.device_id == args["device_id"])
    if not args["include_revoked"]:
        where.append(keys_table.c.revoked_at.is_(None))
    return fetch_page(keys_table, where, [keys_table.c.created_at.desc(), keys_table.c.id], args, _COLUMNS)


@blp.route("", methods=["POST"])
@require("keys:manage")
@blp.arguments(KeyCreateSchema)
@blp.response(201, CreatedKeySchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a key for a device; the secret is in this answer only."""
    return _issue(
        body["device_id"], body["name"], body["permissions"], body["rate_limit"], body["expires_at"]
    )


@blp.route("/<uuid:key_id>", methods=["GET"])
@require("keys:manage")
@blp.response(200, KeySchema)
def get(key_id: uuid.UUID) -> dict[str, Any]:
    """One key."""
    return _key(key_id)


@blp.route("/<uuid:key_id>/revoke", methods=["POST"])
@require("keys:manage")
@blp.response(200, KeySchema)
def revoke(key_id: uuid.UUID) -> dict[str, Any]:
    """Revoke a key at once (idempotent)."""
    _key(key_id)
    api_keys.revoke_key(current_platform().engine, key_id)
    return _key(key_id)


@blp.route("/<uuid:key_id>/rotate", methods=["POST"])
@require("keys:manage")
@blp.response(201, CreatedKeySchema)
def rotate(key_id: uuid.UUID) -> dict[str, Any]:
    """A new secret with the same device, name, permissions and limit; the old key is revoked."""
    old = _key(key_id)
    if old["device_id"] is None:
        raise ApiError(409, "conflict", "this key belongs to no device")
    expires = old["expires_at"] if old["expires_at"] and old["expires_at"] > datetime.now(UTC) else None
    fresh = _issue(old["device_id"], old["name"], old["permissions"], old["rate_limit"], expires)
    api_keys.revoke_key(current_platform().engine, key_id)
    return fresh
