"""Dashboards as the UI stores them: visibility and edit rights as the API's, widgets and layout as JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, insert, or_, select, true, update

from workbench.db.tables import dashboards
from workbench.ui.session import UiUser

# Roles that see and edit every dashboard (as /api/v1/dashboards).
CURATORS = ("admin", "engineer")
WIDGET_TYPES = {
    "line": "Line chart",
    "area": "Area chart",
    "gauge": "Gauge",
    "stat": "Stat with sparkline",
    "table": "Table",
    "alerts": "Alert list",
    "status": "Device status grid",
}
WINDOWS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800}
AGGREGATIONS = ("avg", "min", "max")


def _visible(user: UiUser) -> ColumnElement[bool]:
    if user.role in CURATORS:
        return true()
    return or_(dashboards.c.is_public.is_(True), dashboards.c.user_id == uuid.UUID(user.user_id))


def may_edit(user: UiUser, row: dict[str, Any] | None) -> bool:
    """Owners, engineers and admins edit a dashboard; creating one needs dashboards:write."""
    if not user.may("dashboards:write"):
        return False
    if row is None or user.role in CURATORS:
        return True
    return str(row.get("user_id")) == user.user_id


def list_for(engine: Engine, user: UiUser) -> list[dict[str, Any]]:
    """Dashboards the user may see, newest first."""
    query = select(dashboards).where(_visible(user)).order_by(dashboards.c.updated_at.desc())
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]


def load(engine: Engine, user: UiUser, dashboard_id: str) -> dict[str, Any] | None:
    """One dashboard the user may see, or None."""
    try:
        key = uuid.UUID(dashboard_id)
    except ValueError:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(dashboards).where(dashboards.c.id == key, _visible(user))).first()
    return dict(row._mapping) if row else None


def save(
    engine: Engine,
    user: UiUser,
    dashboard_id: str | None,
    name: str,
    public: bool,
    widgets: list[dict[str, Any]],
    layout: dict[str, Any],
) -> str:
    """Create or update a dashboard the user may edit; returns its id."""
    values = {
        "name": name,
        "is_public": public,
        "widgets": widgets,
        "layout": layout,
        "updated_at": datetime.now(UTC),
    }
    if dashboard_id:
        current = load(engine, user, dashboard_id)
        if current is None or not may_edit(user, current):
            raise PermissionError("only the owner, an engineer or an admin may change this dashboard")
        with engine.begin() as conn:
            conn.execute(update(dashboards).where(dashboards.c.id == current["id"]).values(**values))
        return dashboard_id
    if not may_edit(user, None):
        raise PermissionError(f"role {user.role} may not create dashboards")
    with engine.begin() as conn:
        new_id = conn.execute(
            insert(dashboards).values(user_id=uuid.UUID(user.user_id), **values).returning(dashboards.c.id)
        ).scalar_one()
    return str(new_id)


def ordered(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Widgets in layout order, each with its size (w columns of 12, h pixels)."""
    sizes = {item["id"]: item for item in (dashboard.get("layout") or {}).get("items", [])}
    out = []
    for index, raw in enumerate(dashboard.get("widgets") or []):
        widget = {**raw, "id": str(raw.get("id") or f"w{index}")}  # API clients may omit ids
        size = sizes.get(widget["id"], {})
        out.append({**widget, "w": int(size.get("w", 6)), "h": int(size.get("h", 260))})
    order = [item["id"] for item in (dashboard.get("layout") or {}).get("items", [])]
    out.sort(key=lambda w: order.index(w["id"]) if w["id"] in order else len(order))
    return out


def split(widgets: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Builder widgets (with sizes) back into the stored widgets list and layout."""
    stored = [{k: v for k, v in w.items() if k not in ("w", "h")} for w in widgets]
    layout = {"columns": 12, "items": [{"id": w["id"], "w": w["w"], "h": w["h"]} for w in widgets]}
    return stored, layout
