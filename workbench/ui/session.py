"""Who is using the UI: the server-side session the login page opens, and what that role may do."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.auth.guard import session_principal
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
    """The session's user as the database says now, or None (nobody logged in, or the session ended)."""
    principal = session_principal()
    if principal is None:
        return None
    return UiUser(user_id=str(principal.id), role=principal.role, email=principal.email or "")


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
