"""``/api/v1/auth``: login, refresh, logout (revocations in the database), register (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import current_app, request
from sqlalchemy import update

from workbench.api.common import Strict, make_blueprint
from workbench.api.errors import ApiError
from workbench.api.users import CreatedUserSchema, UserCreateSchema
from workbench.auth import access, tokens
from workbench.auth.guard import current_principal, public, require
from workbench.auth.users import add_user, check_login
from workbench.db.tables import users
from workbench.platform import current_platform

blp = make_blueprint("auth", "/auth", "Login, token refresh, logout and registration")


class LoginSchema(Strict):
    """E-mail and password."""

    email = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    password = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=1024))


class RefreshSchema(Strict):
    """A refresh token."""

    refresh_token = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=4096))


class LogoutSchema(Strict):
    """The refresh token to revoke (the access token in the header is revoked too)."""

    refresh_token = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=4096))


class TokenPairSchema(ma.Schema):
    """Tokens returned by login and refresh."""

    access_token = ma.fields.String(required=True)
    refresh_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True, metadata={"description": "access token lifetime, s"})
    role = ma.fields.String(required=True)


def _pair(user: access.ActiveUser) -> dict[str, Any]:
    secret = current_app.config["SECRET_KEY"]
    version = user.token_version
    return {
        "access_token": tokens.issue(secret, user.id, user.role, user.email, version=version),
        "refresh_token": tokens.issue(secret, user.id, user.role, user.email, "refresh", version),
        "token_type": "Bearer",
        "expires_in": int(tokens.ACCESS_TTL.total_seconds()),
        "role": user.role,
    }


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


@blp.route("/login", methods=["POST"])
@public
@blp.arguments(LoginSchema)
@blp.response(200, TokenPairSchema)
@blp.alt_response(429, description="Too many failed logins; see Retry-After")
def login(body: dict[str, Any]) -> dict[str, Any]:
    """Exchange e-mail and password for an access token (15 min) and a refresh token (7 days)."""
    engine = current_platform().engine
    if not current_platform().settings.local_login:
        raise ApiError(403, "forbidden", "sign-in with a password is switched off: use single sign-on")
    user = check_login(engine, body["email"], body["password"])
    if user is None:
        raise _unauthorized("wrong e-mail or password")
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(last_login=datetime.now(UTC)))
    return _pair(user)


@blp.route("/refresh", methods=["POST"])
@public
@blp.arguments(RefreshSchema)
@blp.response(200, TokenPairSchema)
def refresh(body: dict[str, Any]) -> dict[str, Any]:
    """New tokens for a valid refresh token; the used refresh token is revoked (rotation)."""
    engine = current_platform().engine
    try:
        claims = tokens.decode(current_app.config["SECRET_KEY"], body["refresh_token"], kind="refresh")
    except tokens.TokenError as error:
        raise _unauthorized(str(error)) from None
    # Revoked, or its user changed password/role, was disabled or removed since: refused.
    user = access.token_user(engine, claims)
    if user is None:
        raise _unauthorized("token revoked, or its user was changed, disabled or removed")
    tokens.revoke(engine, claims)
    return _pair(user)


@blp.route("/logout", methods=["POST"])
@public
@blp.arguments(LogoutSchema)
@blp.response(204)
def logout(body: dict[str, Any]) -> None:
    """Revoke the bearer access token and the given refresh token (kept in the database until expiry)."""
    engine = current_platform().engine
    secret = current_app.config["SECRET_KEY"]
    revoked = 0
    scheme, _, access = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and access:
        try:
            tokens.revoke(engine, tokens.decode(secret, access.strip()))
            revoked += 1
        except tokens.TokenError as error:
            raise _unauthorized(str(error)) from None
    if body.get("refresh_token"):
        try:
            tokens.revoke(engine, tokens.decode(secret, body["refresh_token"], kind="refresh"))
            revoked += 1
        except tokens.TokenError as error:
            raise _unauthorized(str(error)) from None
    if not revoked:
        raise _unauthorized("send the access token (Bearer) and/or a refresh_token to revoke")


@blp.route("/register", methods=["POST"])
@require("users:manage")
@blp.arguments(UserCreateSchema)
@blp.response(201, CreatedUserSchema)
def register(body: dict[str, Any]) -> dict[str, Any]:
    """Create a user (admins only; the first admin comes from ``workbench user create``), as POST /users."""
    engine = current_platform().engine
    made, password = add_user(engine, current_principal(), body["email"], body["role"], body.get("password"))
    return {**made, "password": password} if password else made
