"""Dashboards' rules, once for the API and the UI: who sees a dashboard and who may change it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, or_, true

from workbench.auth.permissions import allowed
from workbench.db.tables import dashboards

# Roles that see and edit every dashboard, not only their own and public ones.
CURATORS = ("admin", "engineer")
NOT_YOURS = "only the owner, an engineer or an admin may change this dashboard"


def visible(role: str, user_id: uuid.UUID | str) -> ColumnElement[bool]:
    """The WHERE clause of the dashboards a user sees: every one for curators, else public and own ones."""
    if role in CURATORS:
        return true()
    return or_(dashboards.c.is_public.is_(True), dashboards.c.user_id == uuid.UUID(str(user_id)))


def may_edit(role: str, user_id: uuid.UUID | str, row: dict[str, Any] | None) -> bool:
    """Whether a user may change ``row`` (None: create one): dashboards:write, and owner or curator."""
    if not allowed(role, "dashboards:write"):
        return False
    if row is None or role in CURATORS:
        return True
    return str(row.get("user_id")) == str(user_id)
