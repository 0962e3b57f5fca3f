"""``/api/v1/keys``: device API keys: create (shown once), list, revoke, rotate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    Timestamp,
    make_blueprint,
    query_args,
    row_schema,
)
from workbench.auth import api_keys
from workbench.auth.guard import current_principal, require
from workbench.db.tables import api_keys as keys_table
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


@blp.route("", methods=["GET"])
@require("keys:manage")
@query_args(blp, KeyListArgs)
@blp.response(200, KeyPageSchema)
def list_keys(args: dict[str, Any]) -> dict[str, Any]:
    """Keys, newest first, optionally of one device and including revoked ones."""
    return api_keys.listing(
        current_platform().engine,
        current_principal(),
        args.get("device_id"),
        args["include_revoked"],
        args["page"],
        args["page_size"],
    )


@blp.route("", methods=["POST"])
@require("keys:manage")
@blp.arguments(KeyCreateSchema)
@blp.response(201, CreatedKeySchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a key for a device; the secret is in this answer only."""
    return api_keys.issue(
        current_platform().engine,
        current_principal(),
        body["device_id"],
        body["name"],
        body["permissions"],
        body["rate_limit"],
        body["expires_at"],
    )


@blp.route("/<uuid:key_id>", methods=["GET"])
@require("keys:manage")
@blp.response(200, KeySchema)
def get(key_id: uuid.UUID) -> dict[str, Any]:
    """One key."""
    return api_keys.get(current_platform().engine, current_principal(), key_id)


@blp.route("/<uuid:key_id>/revoke", methods=["POST"])
@require("keys:manage")
@blp.response(200, KeySchema)
def revoke(key_id: uuid.UUID) -> dict[str, Any]:
    """Revoke a key at once (idempotent)."""
    return api_keys.revoke(current_platform().engine, current_principal(), key_id)


@blp.route("/<uuid:key_id>/rotate", methods=["POST"])
@require("keys:manage")
@blp.response(201, CreatedKeySchema)
def rotate(key_id: uuid.UUID) -> dict[str, Any]:
    """A new secret with the same device, name, permissions and limit; the old key is revoked."""
    return api_keys.rotate(current_platform().engine, current_principal(), key_id)
