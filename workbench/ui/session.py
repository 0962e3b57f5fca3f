"""Who is using the UI: the Flask session the login page fills, and what that role may do."""

from __future__ import annotations

from dataclasses import dataclass

from flask import session

from workbench.auth.permissions import allowed


@dataclass(frozen=True)
class UiUser:
    """The logged-in user of a UI request."""

    user_id: str
    role: str
    email: str

    def may(self, permission: str) -> bool:
        """Whether this user's role holds ``permission``."""
        return allowed(self.role, permission)


def current_user() -> UiUser | None:
    """The session's user, or None when nobody is logged in."""
    if "user_id" not in session or "role" not in session:
        return None
    return UiUser(user_id=session["user_id"], role=session["role"], email=session.get("email", ""))


class Forbidden(PermissionError):
    """A UI action the session's role may not take."""


def require_user(permission: str | None = None) -> UiUser:
    """The session's user, who must hold ``permission`` when given; raises Forbidden otherwise."""
    user = current_user()
    if user is None:
        raise Forbidden("not logged in")
    if permission and not user.may(permission):
        raise Forbidden(f"role {user.role} lacks {permission}")
    return user
