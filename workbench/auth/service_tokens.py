"""Service tokens for machines: named, scoped to read permissions, expiring, revocable, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, insert, select, update

from workbench.auth.permissions import PERMISSIONS
from workbench.db.tables import service_tokens

PREFIX = "wbs_"
# Machines read: a token never writes, and never reaches users or keys (it could not mint a credential).
SCOPES = tuple(permission for permission in PERMISSIONS if permission.endswith(":read"))
LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_LIFETIME = timedelta(days=366)


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
    """Store a new token; returns (its id, the raw token to show once). Unknown scopes raise ValueError."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    now = datetime.now(UTC)
    if not now < expires_at <= now + MAX_LIFETIME:
        raise ValueError("expires_at must be in the future and at most a year ahead")
    raw = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        token_id = conn.execute(
            insert(service_tokens)
            .values(
                name=name,
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
