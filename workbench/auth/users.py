"""Creating and finding users, and checking a login."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from sqlalchemy import Engine, insert, select, true

from workbench.auth.access import ActiveUser
from workbench.auth.passwords import hash_password, verify_password
from workbench.db.tables import users

ROLES = ("admin", "engineer", "operator", "viewer")


class UserError(ValueError):
    """A user cannot be created as asked."""


def create_user(engine: Engine, email: str, role: str, password: str) -> uuid.UUID:
    """Create a user with an argon2 password hash; returns the new id."""
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if "@" not in email:
        raise UserError("email must contain @")
    if len(password) < 8:
        raise UserError("password must be at least 8 characters")
    with engine.begin() as conn:
        if conn.execute(select(users.c.id).where(users.c.email == email.lower())).first():
            raise UserError(f"a user with email {email} exists")
        row = conn.execute(
            insert(users)
            .values(email=email.lower(), role=role, password_hash=hash_password(password))
            .returning(users.c.id)
        ).one()
    user_id: uuid.UUID = row.id
    return user_id


def find_user(engine: Engine, email: str) -> dict[str, Any] | None:
    """The user with ``email``, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email.lower())).first()
    return dict(row._mapping) if row else None


@functools.cache
def _dummy_hash() -> str:
    # Verified against when the e-mail is unknown: every login costs one argon2 verify (no probing by timing).
    return hash_password(uuid.uuid4().hex)


def check_login(engine: Engine, email: str, password: str) -> ActiveUser | None:
    """The enabled user with this e-mail and password, or None; always exactly one password verification."""
    with engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.email == email.strip().lower())).first()
    matches = verify_password(row.password_hash if row is not None else _dummy_hash(), password)
    if row is None or not matches or row.disabled:
        return None
    return ActiveUser(id=row.id, email=row.email, role=row.role, token_version=row.token_version)


def has_admin(engine: Engine) -> bool:
    """Whether an enabled administrator exists (a fresh installation has none)."""
    with engine.connect() as conn:
        found = conn.execute(
            select(users.c.id).where(users.c.role == "admin", users.c.disabled.isnot(true())).limit(1)
        ).first()
    return found is not None


FIRST_ADMIN_COMMAND = "workbench user create --email you@example.com --role admin"
