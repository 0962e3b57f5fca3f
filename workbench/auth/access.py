"""When a user's access holds: the user epoch that tokens and UI sessions carry, and the server-side sessions.

A user row has a ``token_version`` (the epoch). Access tokens, refresh tokens and UI sessions record the
epoch they were issued under; every request loads the user and refuses a missing or disabled user, or an
epoch that moved on. :func:`end_access` moves it on (password, role or disabled changes), deleting the
user removes the row: either way every token and session of that user ends at once.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, exists, select, update

from workbench.db.tables import revoked_tokens, user_sessions, users

# last_seen is written at most this often per session, so Dash's many callbacks do not each write.
TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class ActiveUser:
    """A user whose access holds right now, as the database says (never as a token claims)."""

    id: uuid.UUID
    email: str
    role: str
    token_version: int


def _active(row: Any) -> ActiveUser:
    return ActiveUser(id=row.id, email=row.email, role=row.role, token_version=row.token_version)


def end_access(conn: Connection, user_id: uuid.UUID) -> None:
    """Move the user's epoch on and drop their UI sessions: every token and session they hold ends."""
    conn.execute(update(users).where(users.c.id == user_id).values(token_version=users.c.token_version + 1))
    conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id))


def token_user(engine: Engine, claims: dict[str, Any]) -> ActiveUser | None:
    """The user behind token ``claims`` if they exist, are enabled, the epoch holds and it is not revoked."""
    try:
        user_id = uuid.UUID(str(claims["sub"]))
        version = int(claims["ver"])
    except (KeyError, ValueError, TypeError):
        return None  # tokens from before the epoch existed carry no "ver": they are refused
    revoked = exists().where(revoked_tokens.c.jti == str(claims["jti"]))
    query = select(users.c.id, users.c.email, users.c.role, users.c.token_version, users.c.disabled, revoked)
    with engine.connect() as conn:
        row = conn.execute(query.where(users.c.id == user_id)).first()
    if row is None or row.disabled or row[-1] or row.token_version != version:
        return None
    return _active(row)


def users_holding(engine: Engine, held: set[tuple[str, int]]) -> set[tuple[str, int]]:
    """Of ``(user id, epoch)`` pairs, those whose user still exists, is enabled and is at that epoch."""
    ids = {uuid.UUID(user_id) for user_id, _ in held}
    if not ids:
        return set()
    query = select(users.c.id, users.c.token_version).where(users.c.id.in_(ids), users.c.disabled.is_(False))
    with engine.connect() as conn:
        current = {(str(row.id), row.token_version) for row in conn.execute(query)}
    return held & current


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start_session(engine: Engine, user: ActiveUser) -> str:
    """Open a UI session for ``user``; returns the random id the session cookie carries."""
    raw = secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(
            user_sessions.insert().values(id=_digest(raw), user_id=user.id, token_version=user.token_version)
        )
    return raw


def session_user(engine: Engine, raw: str, idle: timedelta, absolute: timedelta) -> ActiveUser | None:
    """The user of UI session ``raw`` while it holds (epoch, enabled, idle, absolute timeouts); touches it."""
    if not isinstance(raw, str) or not raw:
        return None
    now = datetime.now(UTC)
    key = _digest(raw)
    query = (
        select(
            users.c.id,
            users.c.email,
            users.c.role,
            users.c.token_version,
            users.c.disabled,
            user_sessions.c.token_version.label("session_version"),
            user_sessions.c.created_at,
            user_sessions.c.last_seen,
        )
        .select_from(user_sessions.join(users, users.c.id == user_sessions.c.user_id))
        .where(user_sessions.c.id == key)
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
        expired = row is not None and (now - row.last_seen > idle or now - row.created_at > absolute)
        if row is None or row.disabled or row.session_version != row.token_version or expired:
            if row is not None:
                conn.execute(delete(user_sessions).where(user_sessions.c.id == key))
                conn.commit()
            return None
        if now - row.last_seen > TOUCH_EVERY:
            conn.execute(update(user_sessions).where(user_sessions.c.id == key).values(last_seen=now))
            conn.commit()
    return _active(row)


def end_session(engine: Engine, raw: str) -> None:
    """Delete UI session ``raw`` (logout): a copy of the cookie is worthless afterwards."""
    with engine.begin() as conn:
        conn.execute(delete(user_sessions).where(user_sessions.c.id == _digest(raw)))


def purge_sessions(engine: Engine, idle: timedelta, absolute: timedelta) -> int:
    """Delete sessions past either timeout; returns how many."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        gone = conn.execute(
            delete(user_sessions).where(
                (user_sessions.c.last_seen < now - idle) | (user_sessions.c.created_at < now - absolute)
            )
        )
    return int(gone.rowcount)
