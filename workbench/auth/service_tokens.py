"""Service tokens for machines: named, scoped to read permissions, expiring, revocable, stored as SHA-256.

:func:`issue`, :func:`list_tokens`, :func:`get_token` and :func:`withdraw` are the admins' path (API and UI
alike): each checks ``users:manage`` (a token could mint access, so it is managed with the users).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, insert, select, update

from workbench.auth.permissions import PERMISSIONS
from workbench.auth.principal import Principal, authorize
from workbench.db.paging import page_rows
from workbench.db.tables import service_tokens
from workbench.errors import ApiError

PREFIX = "wbs_"
# Machines read: a token never writes, and never reaches users or keys (it could not mint a credential).
SCOPES = tuple(permission for permission in PERMISSIONS if permission.endswith(":read"))
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_LIFETIME = timedelta(days=366)
DEFAULT_LIFETIME = timedelta(days=90)
MAX_NAME = 255
MANAGE = "users:manage"
# What a token looks like outside this module (never its hash).
COLUMNS = tuple(c for c in service_tokens.c if c.name != "token_hash")


class TokenError(ApiError, ValueError):
    """A token cannot be created as asked (422 naming the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(422, "validation_error", message, {"fields": {field: [message]}})


@dataclass(frozen=True)
class ServiceToken:
    """A valid token, as the platform knows it (never the secret itself)."""

    id: uuid.UUID
    name: str
    scopes: frozenset[str]


def is_service_token(raw: str) -> bool:
    """Whether ``raw`` has the form of a service token (and not of a JWT)."""
    return raw.startswith(PREFIX)


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create(
    engine: Engine, name: str, scopes: list[str], expires_at: datetime, created_by: uuid.UUID | None
) -> tuple[uuid.UUID, str]:
    """Store a new token; returns (its id, the raw token to show once). Bad input raises TokenError (422)."""
    if not 1 <= len(name.strip()) <= MAX_NAME:
        raise TokenError("name", f"name must be 1 to {MAX_NAME} characters")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        got = ", ".join(unknown) or "none"
        raise TokenError("scopes", f"scopes must be among {', '.join(SCOPES)}; got {got}")
    now = datetime.now(UTC)
    if not now < expires_at <= now + MAX_LIFETIME:
        raise TokenError("expires_at", "expires_at must be in the future and at most a year ahead")
    raw = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id = conn.execute(
            insert(service_tokens)
            .values(
                name=name.strip(),
                token_hash=_digest(raw),
                prefix=raw[:12],
                scopes=sorted(set(scopes)),
                expires_at=expires_at,
                created_by=created_by,
            )
            .returning(service_tokens.c.id)
        ).scalar_one()
    return token_id, raw


def authenticate(engine: Engine, raw: str) -> ServiceToken | None:
    """The token behind ``raw`` while it is neither revoked nor expired; notes when it was last used."""
    if not is_service_token(raw) or len(raw) > 128:
        return None
    now = datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(
            select(service_tokens).where(
                and_(
                    service_tokens.c.token_hash == _digest(raw),
                    service_tokens.c.revoked_at.is_(None),
                    service_tokens.c.expires_at > now,
                )
            )
        ).first()
        if row is None:
            return None
        if row.last_used is None or now - row.last_used > LAST_USED_RESOLUTION:
            conn.execute(update(service_tokens).where(service_tokens.c.id == row.id).values(last_used=now))
            conn.commit()
    return ServiceToken(id=row.id, name=row.name, scopes=frozenset(row.scopes))


def revoke(engine: Engine, token_id: uuid.UUID) -> bool:
    """Revoke a token at once; returns whether a valid one was revoked."""
    with engine.begin() as conn:
        done = conn.execute(
            update(service_tokens)
            .where(and_(service_tokens.c.id == token_id, service_tokens.c.revoked_at.is_(None)))
            .values(revoked_at=datetime.now(UTC))
        )
    return bool(done.rowcount)


def valid_ids(engine: Engine, token_ids: set[str]) -> set[str]:
    """Which of ``token_ids`` are still neither revoked nor expired (for connections held open)."""
    if not token_ids:
        return set()
    with engine.connect() as conn:
        rows = conn.execute(
            select(service_tokens.c.id).where(
                and_(
                    service_tokens.c.id.in_([uuid.UUID(t) for t in token_ids]),
                    service_tokens.c.revoked_at.is_(None),
                    service_tokens.c.expires_at > datetime.now(UTC),
                )
            )
        )
        return {str(row.id) for row in rows}


def issue(
    engine: Engine, actor: Principal | None, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[dict[str, Any], str]:
    """A token for a machine (default: 90 days); returns (the token as listed, its secret to show once)."""
    actor = authorize(actor, MANAGE)
    expires_at = expires_at or datetime.now(UTC) + DEFAULT_LIFETIME
    token_id, raw = create(engine, name, scopes, expires_at, actor.id if actor.kind == "user" else None)
    return get_token(engine, actor, token_id), raw


def list_tokens(
    engine: Engine, actor: Principal | None, include_revoked: bool = False, page: int = 1, page_size: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """One page of tokens, newest first, with when each was last used; and how many in all."""
    authorize(actor, MANAGE)
    where = [] if include_revoked else [service_tokens.c.revoked_at.is_(None)]
    order = [service_tokens.c.created_at.desc(), service_tokens.c.id]
    return page_rows(engine, service_tokens, where, order, page, page_size, COLUMNS)


def get_token(engine: Engine, actor: Principal | None, token_id: uuid.UUID) -> dict[str, Any]:
    """One token as listed; 404 when absent."""
    authorize(actor, MANAGE)
    with engine.connect() as conn:
        row = conn.execute(select(*COLUMNS).where(service_tokens.c.id == token_id)).mappings().first()
    if row is None:
        raise ApiError(404, "not_found", f"service token {token_id} not found")
    return dict(row)


def withdraw(engine: Engine, actor: Principal | None, token_id: uuid.UUID) -> dict[str, Any]:
    """Revoke a token at once (idempotent; 404 when absent); returns it as listed."""
    get_token(engine, actor, token_id)
    revoke(engine, token_id)
    return get_token(engine, actor, token_id)
