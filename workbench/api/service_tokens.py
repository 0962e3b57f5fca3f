"""``/api/v1/service-tokens``: credentials for machines (historians, BI tools, Grafana, scripts)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma

from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    Timestamp,
    fetch_page,
    fetch_row,
    make_blueprint,
    query_args,
)
from workbench.api.errors import ApiError
from workbench.auth import service_tokens
from workbench.auth.guard import current_principal, require
from workbench.db.tables import service_tokens as tokens_table
from workbench.platform import current_platform

blp = make_blueprint("service_tokens", "/service-tokens", "Service tokens: scoped read access for machines")
DEFAULT_LIFETIME = timedelta(days=90)


class TokenCreateSchema(Strict):
    """A new token: a name, read scopes, an expiry (default 90 days, at most a year)."""

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    scopes = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(service_tokens.SCOPES)),
        required=True,
        validate=ma.validate.Length(min=1),
    )
    expires_at = Timestamp(load_default=None, allow_none=True)


class TokenSchema(ma.Schema):
    """A token as listed (never the secret; ``prefix`` helps to recognise it)."""

    id = ma.fields.UUID(required=True)
    name = ma.fields.String(required=True)
    prefix = ma.fields.String(required=True)
    scopes = ma.fields.List(ma.fields.String(), required=True)
    expires_at = ma.fields.DateTime(required=True)
    last_used = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    created_by = ma.fields.UUID(allow_none=True)
    created_at = ma.fields.DateTime(required=True)


class CreatedTokenSchema(TokenSchema):
    """A new token with its secret, shown this once."""

    token = ma.fields.String(required=True, metadata={"description": "shown once; stored only hashed"})


class TokenPageSchema(PageSchema):
    """A page of tokens."""

    items = ma.fields.List(ma.fields.Nested(TokenSchema), required=True)


class TokenListArgs(PageArgs):
    """Filters of the token list."""

    include_revoked = ma.fields.Boolean(load_default=False)


_COLUMNS = [c for c in tokens_table.c if c.name != "token_hash"]


def _token(token_id: uuid.UUID) -> dict[str, Any]:
    return fetch_row(tokens_table, token_id, "service token", _COLUMNS)


@blp.route("", methods=["GET"])
@require("users:manage")
@query_args(blp, TokenListArgs)
@blp.response(200, TokenPageSchema)
def list_tokens(args: dict[str, Any]) -> dict[str, Any]:
    """Tokens, newest first, with when each was last used."""
    where = [] if args["include_revoked"] else [tokens_table.c.revoked_at.is_(None)]
    order = [tokens_table.c.created_at.desc(), tokens_table.c.id]
    return fetch_page(tokens_table, where, order, args, _COLUMNS)


@blp.route("", methods=["POST"])
@require("users:manage")
@blp.arguments(TokenCreateSchema)
@blp.response(201, CreatedTokenSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a token; the secret is in this answer only. Scopes are read permissions of the role matrix."""
    expires_at = body["expires_at"] or datetime.now(UTC) + DEFAULT_LIFETIME
    creator = current_principal()
    try:
        token_id, raw = service_tokens.create(
            current_platform().engine,
            body["name"],
            body["scopes"],
            expires_at,
            creator.id if creator.kind == "user" else None,
        )
    except ValueError as error:
        raise ApiError(
            422, "validation_error", str(error), {"fields": {"expires_at": [str(error)]}}
        ) from None
    return {**_token(token_id), "token": raw}


@blp.route("/<uuid:token_id>", methods=["DELETE"])
@require("users:manage")
@blp.response(204)
def revoke(token_id: uuid.UUID) -> None:
    """Revoke a token at once (idempotent)."""
    _token(token_id)
    service_tokens.revoke(current_platform().engine, token_id)
