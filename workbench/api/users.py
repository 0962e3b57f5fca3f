"""``/api/v1/users``: user management (admins only), through :mod:`workbench.auth.users`."""

from __future__ import annotations

import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import Engine

from workbench.api.common import Changes, PageArgs, PageSchema, Strict, make_blueprint, paged
from workbench.api.common import query_args as _query_args
from workbench.auth import users
from workbench.auth.guard import current_principal, require
from workbench.auth.users import ROLES
from workbench.platform import current_platform

blp = make_blueprint("users", "/users", "User management (admin)")

_EMAIL = ma.validate.And(ma.validate.Length(min=3, max=255), ma.validate.Email())
_PASSWORD = ma.validate.Length(min=8, max=1024)


class UserCreateSchema(Strict):
    """A new user; leave out the password to have one made up (returned once)."""

    email = ma.fields.String(required=True, validate=_EMAIL)
    password = ma.fields.String(load_only=True, validate=_PASSWORD)
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


class CreatedUserSchema(UserSchema):
    """A new user; ``password`` only when the server made one up (shown this once)."""

    password = ma.fields.String(metadata={"description": "the generated password, shown once"})


class PasswordResetSchema(Strict):
    """A new password, or none to have one made up."""

    password = ma.fields.String(load_default=None, allow_none=True, validate=_PASSWORD)


class PasswordResetResultSchema(ma.Schema):
    """The user after a reset, and the new password when the server made it up (shown this once)."""

    user = ma.fields.Nested(UserSchema, required=True)
    password = ma.fields.String(metadata={"description": "the generated password, shown once"})


def _engine() -> Engine:
    return current_platform().engine


@blp.route("", methods=["GET"])
@require(users.MANAGE)
@_query_args(blp, UserListArgs)
@blp.response(200, UserPageSchema)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """Users, newest first."""
    items, total = users.list_users(
        _engine(), current_principal(), args.get("role"), args["page"], args["page_size"]
    )
    return paged(items, args, total)


@blp.route("", methods=["POST"])
@require(users.MANAGE)
@blp.arguments(UserCreateSchema)
@blp.response(201, CreatedUserSchema)
def create(body: dict[str, Any]) -> dict[str, Any]:
    """Create (invite) a user; without a password one is made up and returned once."""
    made, password = users.add_user(
        _engine(), current_principal(), body["email"], body["role"], body.get("password")
    )
    return {**made, "password": password} if password else made


@blp.route("/<uuid:user_id>", methods=["GET"])
@require(users.MANAGE)
@blp.response(200, UserSchema)
def get(user_id: uuid.UUID) -> dict[str, Any]:
    """One user."""
    return users.get_user(_engine(), current_principal(), user_id)


@blp.route("/<uuid:user_id>", methods=["PUT", "PATCH"])
@require(users.MANAGE)
@blp.arguments(UserUpdateSchema)
@blp.response(200, UserSchema)
def update_user(body: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
    """Change a user's role, password or disabled flag (the last active admin keeps theirs)."""
    return users.change_user(
        _engine(), current_principal(), user_id, body.get("role"), body.get("disabled"), body.get("password")
    )


@blp.route("/<uuid:user_id>/reset-password", methods=["POST"])
@require(users.MANAGE)
@blp.arguments(PasswordResetSchema)
@blp.response(200, PasswordResetResultSchema)
def reset_password(body: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
    """Give a user a new password (made up when not sent, returned once); their sessions end."""
    user, password = users.reset_password(_engine(), current_principal(), user_id, body["password"])
    return {"user": user} if body["password"] else {"user": user, "password": password}


@blp.route("/<uuid:user_id>", methods=["DELETE"])
@require(users.MANAGE)
@blp.response(204)
def delete_user(user_id: uuid.UUID) -> None:
    """Remove a user (their dashboards stay, without an owner; the last active admin stays)."""
    users.remove_user(_engine(), current_principal(), user_id)
