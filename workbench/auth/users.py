"""Users, the one path of the API, the UI and the CLI: create, list, change, reset, remove, check a login.

Every function taking an ``actor`` checks ``users:manage`` itself. Two rules hold whoever calls: the
last active admin is never demoted, disabled or removed (the admins' rows are locked while it is checked,
so two admins demoting each other at once cannot both succeed), and a new password, another role or
disabling ends every token and UI session the user holds (:func:`workbench.auth.access.end_access`).
"""

from __future__ import annotations

import functools
import logging
import secrets
import uuid
from typing import Any

import marshmallow as ma
from sqlalchemy import Connection, Engine, delete, insert, select, true, update
from sqlalchemy.exc import IntegrityError

from workbench.auth import access
from workbench.auth.access import ActiveUser
from workbench.auth.passwords import hash_password, verify_password
from workbench.auth.principal import Principal, authorize
from workbench.db.paging import page_rows
from workbench.db.tables import users
from workbench.errors import ApiError

log = logging.getLogger(__name__)

ROLES = ("admin", "engineer", "operator", "viewer")
MANAGE = "users:manage"
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
# What a user looks like outside this module (never the password hash).
COLUMNS = (users.c.id, users.c.email, users.c.role, users.c.disabled, users.c.created_at, users.c.last_login)
LAST_ADMIN = "the last active admin cannot be {verb}: make another user admin first"
SELF = {"demoted": "demote", "disabled": "disable", "removed": "remove"}
_EMAIL = ma.validate.Email()


class UserError(ApiError):
    """A user cannot be created or changed as asked (422 bad input; 409 conflict; 404 absent)."""

    def __init__(self, message: str, status: int = 422, field: str | None = None) -> None:
        code = {404: "not_found", 409: "conflict"}.get(status, "validation_error")
        super().__init__(status, code, message, {"fields": {field: [message]}} if field else None)


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise UserError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", field="role")


def new_password() -> str:
    """A random password to hand over once (an invitation, a reset)."""
    return secrets.token_urlsafe(12)


def create_user(engine: Engine, email: str, role: str, password: str) -> uuid.UUID:
    """Create a user with an argon2 password hash; returns the new id (no actor: the CLI, the demo)."""
    _check_role(role)
    email = email.strip().lower()
    try:
        _EMAIL(email)
    except ma.ValidationError:
        raise UserError(f"not an e-mail address: {email!r}", field="email") from None
    _check_password(password)
    try:
        with engine.begin() as conn:
            user_id: uuid.UUID = conn.execute(
                insert(users)
                .values(email=email, role=role, password_hash=hash_password(password))
                .returning(users.c.id)
            ).scalar_one()
    except IntegrityError:
        raise UserError(f"a user with e-mail {email} exists", 409, "email") from None
    return user_id


def add_user(
    engine: Engine, actor: Principal | None, email: str, role: str, password: str | None = None
) -> tuple[dict[str, Any], str | None]:
    """Create (invite) a user; without ``password`` one is made and returned, to be shown once."""
    actor = authorize(actor, MANAGE)
    made = new_password() if not password else None
    user_id = create_user(engine, email, role, password or made or "")
    log.info("user %s created as %s by %s", email, role, actor.id)
    return get_user(engine, actor, user_id), made


def list_users(
    engine: Engine, actor: Principal | None, role: str | None = None, page: int = 1, page_size: int = 50
) -> tuple[list[dict[str, Any]], int]:
    """One page of users, newest first, and how many there are in all (of ``role`` when given)."""
    authorize(actor, MANAGE)
    where = [users.c.role == role] if role else []
    order = [users.c.created_at.desc(), users.c.id]
    return page_rows(engine, users, where, order, page, page_size, COLUMNS)


def get_user(engine: Engine, actor: Principal | None, user_id: uuid.UUID) -> dict[str, Any]:
    """One user; 404 when absent."""
    authorize(actor, MANAGE)
    with engine.connect() as conn:
        row = conn.execute(select(*COLUMNS).where(users.c.id == user_id)).mappings().first()
    if row is None:
        raise UserError(f"user {user_id} not found", 404)
    return dict(row)


def _active_admins(conn: Connection) -> list[uuid.UUID]:
    """The active admins' ids, their rows locked in id order: concurrent changes of admins queue here."""
    query = select(users.c.id).where(users.c.role == "admin", users.c.disabled.isnot(true()))
    return list(conn.execute(query.order_by(users.c.id).with_for_update()).scalars())


def _guard_admin(admins: list[uuid.UUID], actor: Principal, user_id: uuid.UUID, verb: str) -> None:
    """Refuse taking admin away from the last active admin, then an admin's doing it to themselves."""
    if admins == [user_id]:
        raise UserError(LAST_ADMIN.format(verb=verb), 409)
    if user_id == actor.id:
        raise UserError(f"admins cannot {SELF[verb]} themselves", 409)


def change_user(
    engine: Engine,
    actor: Principal | None,
    user_id: uuid.UUID,
    role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """Change a user's role, disabled flag or password; any real change ends the user's access at once."""
    actor = authorize(actor, MANAGE)
    if role is not None:
        _check_role(role)
    if password is not None:
        _check_password(password)
    with engine.begin() as conn:
        admins = _active_admins(conn) if role is not None or disabled is not None else []
        before = conn.execute(
            select(users.c.role, users.c.disabled).where(users.c.id == user_id).with_for_update()
        ).first()
        if before is None:
            raise UserError(f"user {user_id} not found", 404)
        values: dict[str, Any] = {}
        if role is not None and role != before.role:
            values["role"] = role
        if disabled is not None and disabled != before.disabled:
            values["disabled"] = disabled
        if user_id in admins and ("role" in values or values.get("disabled")):
            _guard_admin(admins, actor, user_id, "disabled" if values.get("disabled") else "demoted")
        if password is not None:
            values["password_hash"] = hash_password(password)
        if values:
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            access.end_access(conn, user_id)
    if values:
        log.info("user %s changed by %s: %s", user_id, actor.id, sorted(values))
    return get_user(engine, actor, user_id)


def reset_password(
    engine: Engine, actor: Principal | None, user_id: uuid.UUID, password: str | None = None
) -> tuple[dict[str, Any], str]:
    """Set a new password (made up when not given, to be shown once); the user's sessions end."""
    chosen = password or new_password()
    return change_user(engine, actor, user_id, password=chosen), chosen


def remove_user(engine: Engine, actor: Principal | None, user_id: uuid.UUID) -> None:
    """Delete a user (their dashboards stay, without an owner); their tokens and sessions die with the row."""
    actor = authorize(actor, MANAGE)
    with engine.begin() as conn:
        admins = _active_admins(conn)
        row = conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update()).first()
        if row is None:
            raise UserError(f"user {user_id} not found", 404)
        if user_id in admins:
            _guard_admin(admins, actor, user_id, "removed")
        elif user_id == actor.id:
            raise UserError("admins cannot remove themselves", 409)
        conn.execute(delete(users).where(users.c.id == user_id))
    log.info("user %s removed by %s", user_id, actor.id)


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
