"""``/api/v1/service-tokens``: credentials for machines (historians, BI tools, Grafana, scripts)."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import Engine

from workbench.api.common import PageArgs, PageSchema, Strict, Timestamp, make_blueprint, paged, query_args
from workbench.auth import service_tokens
from workbench.auth.guard import current_principal, require
from workbench.platform import current_platform

blp = make_blueprint("service_tokens", "/service-tokens", "Service tokens: scoped read access for machines")


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


def _engine() -> Engine:
    return current_platform().engine


@blp.route("", methods=["GET"])
@require(service_tokens.MANAGE)
@query_args(blp, TokenListArgs)
@blp.response(200, TokenPageSchema)
def list_tokens(args: dict[str, Any]) -> dict[str, Any]:
    """Tokens, newest first, with when each was last used."""
    items, total = service_tokens.list_tokens(
        _engine(), current_principal(), args["include_revoked"], args["page"], args["page_size"]
    )
    return paged(items, args, total)


@blp.route("", methods=["POST"])
@require(service_tokens.MANAGE)
@blp.arguments(TokenCreateSchema)
@blp.response(201, CreatedTokenSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a token; the secret is in this answer only. Scopes are read permissions of the role matrix."""
    token, raw = service_tokens.issue(
        _engine(), current_principal(), body["name"], body["scopes"], body["expires_at"]
    )
    return {**token, "token": raw}


@blp.route("/<uuid:token_id>", methods=["DELETE"])
@require(service_tokens.MANAGE)
@blp.response(204)
def revoke(token_id: uuid.UUID) -> None:
    """Revoke a token at once (idempotent)."""
    service_tokens.withdraw(_engine(), current_principal(), token_id)
