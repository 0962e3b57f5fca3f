"""``/api/v1/users``: user management (admins only)."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from workbench.api.common import (
    Changes,
    PageArgs,
    PageSchema,
    Strict,
    fetch_page,
    fetch_row,
    make_blueprint,
    not_found,
)
from workbench.api.common import query_args as _query_args
from workbench.api.errors import ApiError
from workbench.auth import access
from workbench.auth.guard import current_principal, require
from workbench.auth.passwords import hash_password
from workbench.auth.users import ROLES
from workbench.db.tables import users
from workbench.platform import current_platform

blp = make_blueprint("users", "/users", "User management (admin)")

_EMAIL = ma.validate.And(ma.validate.Length(min=3, max=255), ma.validate.Email())
_PASSWORD = ma.validate.Length(min=8, max=1024)


class UserCreateSchema(Strict):
    """A new user."""

    email = ma.fields.String(required=True, validate=_EMAIL)
    password = ma.fields.String(required=True, load_only=True, validate=_PASSWORD)
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))


class UserUpdateSchema(Changes):
    """Changes to a user (every field optional)."""

    password = ma.fields.String(load_only=True, validate=_PASSWORD)
    role = ma.fields.String(validate=ma.validate.OneOf(ROLES))
    disabled = ma.fields.Boolean()


class UserSchema(ma.Schema):
    """A user as the API shows it (never the password hash)."""

    id = ma.fields.UUID(required=True)
    email = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    disabled = ma.fields.Boolean(required=True)
    created_at = ma.fields.DateTime(required=True)
    last_login = ma.fields.DateTime(allow_none=True)


class UserListArgs(PageArgs):
    """Filters of the user list."""

    role = ma.fields.String(validate=ma.validate.OneOf(ROLES))


class UserPageSchema(PageSchema):
    """A page of users."""

    items = ma.fields.List(ma.fields.Nested(UserSchema), required=True)


_COLUMNS = (users.c.id, users.c.email, users.c.role, users.c.disabled, users.c.created_at, users.c.last_login)


def insert_user(body: dict[str, Any]) -> dict[str, Any]:
    """Create a user from a validated body; 409 when the e-mail is taken."""
    try:
        with current_platform().engine.begin() as conn:
            row = conn.execute(
                insert(users)
                .values(
                    email=body["email"].lower(),
                    role=body["role"],
                    password_hash=hash_password(body["password"]),
                )
                .returning(*_COLUMNS)
            ).one()
    except IntegrityError:
        raise ApiError(
            409, "conflict", "a user with this e-mail exists", {"fields": {"email": ["taken"]}}
        ) from None
    return dict(row._mapping)


@blp.route("", methods=["GET"])
@require("users:manage")
@_query_args(blp, UserListArgs)
@blp.response(200, UserPageSchema)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """Users, newest first."""
    where = [users.c.role == args["role"]] if "role" in args else []
    return fetch_page(users, where, [users.c.created_at.desc(), users.c.id], args, _COLUMNS)


@blp.route("", methods=["POST"])
@require("users:manage")
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create a user."""
    return insert_user(body)


@blp.route("/<uuid:user_id>", methods=["GET"])
@require("users:manage")
@blp.response(200, UserSchema)
def get(user_id: uuid.UUID) -> dict[str, Any]:
    """One user."""
    return fetch_row(users, user_id, "user", _COLUMNS)


@blp.route("/<uuid:user_id>", methods=["PUT"])
@require("users:manage")
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
def update_user(body: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
    """Change a user's role, password or disabled flag."""
    values: dict[str, Any] = {k: body[k] for k in ("role", "disabled") if k in body}
    if "password" in body:
        values["password_hash"] = hash_password(body["password"])
    if user_id == current_principal().id and (
        values.get("disabled") or values.get("role", "admin") != "admin"
    ):
        raise ApiError(409, "conflict", "admins cannot demote or disable themselves")
    with current_platform().engine.begin() as conn:
        before = conn.execute(
            select(users.c.role, users.c.disabled).where(users.c.id == user_id).with_for_update()
        ).first()
        if before is None:
            raise not_found("user", user_id)
        if values:
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
        # A new password, another role or disabling ends every token and UI session the user holds.
        if "password_hash" in values or any(
            values[k] != getattr(before, k) for k in ("role", "disabled") if k in values
        ):
            access.end_access(conn, user_id)
        row = conn.execute(select(*_COLUMNS).where(users.c.id == user_id)).one()
    return dict(row._mapping)


@blp.route("/<uuid:user_id>", methods=["DELETE"])
@require("users:manage")
@blp.response(204)
def delete_user(user_id: uuid.UUID) -> None:
    """Remove a user (their dashboards stay, without an owner)."""
    if user_id == current_principal().id:
        raise ApiError(409, "conflict", "admins cannot delete themselves")
    with current_platform().engine.begin() as conn:
        if not conn.execute(delete(users).where(users.c.id == user_id)).rowcount:
            raise not_found("user", user_id)
