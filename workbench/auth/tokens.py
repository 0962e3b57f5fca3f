"""JWT access and refresh tokens (design §7.1): 15 minutes and 7 days; revocations kept in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.postgresql import insert

from workbench.db.tables import revoked_tokens

ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=7)
ALGORITHM = "HS256"


class TokenError(ValueError):
    """A token is malformed, expired, of the wrong type or revoked."""


def issue(
    secret: str, user_id: uuid.UUID, role: str, email: str, kind: str = "access", version: int = 0
) -> str:
    """A signed token of ``kind`` (access or refresh) for the user at epoch ``version`` (token_version)."""
    now = datetime.now(UTC)
    ttl = ACCESS_TTL if kind == "access" else REFRESH_TTL
    claims = {
        "sub": str(user_id),
        "role": role,
        "email": email,
        "type": kind,
        "ver": version,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode(secret: str, token: str, kind: str = "access") -> dict[str, Any]:
    """The claims of a valid, unexpired token of ``kind``; raises TokenError otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "jti", "type"]}
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("token expired") from None
    except jwt.PyJWTError as error:
        raise TokenError(f"invalid token: {error}") from None
    if claims.get("type") != kind:
        raise TokenError(f"expected a {kind} token")
    return claims


def revoke(engine: Engine, claims: dict[str, Any]) -> None:
    """Revoke the token with these claims until it would have expired anyway."""
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(revoked_tokens).values(jti=claims["jti"], expires_at=expires).on_conflict_do_nothing()
        )
        conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at < datetime.now(UTC)))


def is_revoked(engine: Engine, jti: str) -> bool:
    """Whether the token with ``jti`` was revoked."""
    with engine.connect() as conn:
        return (
            conn.execute(select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti)).first() is not None
        )
