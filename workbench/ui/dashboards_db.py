"""Dashboards as the UI stores them: visibility and edit rights as the API's, widgets and layout as JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, insert, select, update

from workbench import dashboards as rules
from workbench.db.tables import dashboards
from workbench.ui.session import UiUser

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
# The layout grid: 12 columns, rows of ROW_HEIGHT pixels with MARGIN between cells (react-grid-layout's).
COLUMNS = 12
ROW_HEIGHT = 30
MARGIN = 10
DEFAULT_W, DEFAULT_H = 6, 7
MIN_COLUMNS, MIN_ROWS = 2, 4
PLACE = ("x", "y", "w", "h")
CELL_PREFIX = "cell-"


def _visible(user: UiUser) -> ColumnElement[bool]:
    return rules.visible(user.role, user.user_id)


def may_edit(user: UiUser, row: dict[str, Any] | None) -> bool:
    """Owners, engineers and admins edit a dashboard; creating one needs dashboards:write."""
    return rules.may_edit(user.role, user.user_id, row)


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
            raise PermissionError(rules.NOT_YOURS)
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


def height_px(rows: int) -> int:
    """Pixel height of a widget ``rows`` grid rows tall (rows plus the gaps between them)."""
    return rows * ROW_HEIGHT + (rows - 1) * MARGIN


def _rows(pixels: int) -> int:
    return max(MIN_ROWS, round((pixels + MARGIN) / (ROW_HEIGHT + MARGIN)))


def ordered(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Widgets in reading order, each with its grid place (x, y, w of 12 columns; h in rows)."""
    layout = dashboard.get("layout") or {}
    items = {str(item.get("id")): item for item in layout.get("items", [])}
    # Layouts written before the drag-and-drop grid (and API clients) give only w and h in pixels:
    # flow those left to right, row by row, as the Bootstrap columns showed them.
    legacy = "row_height" not in layout
    out: list[dict[str, Any]] = []
    x = y = row_rows = 0
    order = list(items)
    widgets = [
        {**raw, "id": str(raw.get("id") or f"w{index}")}
        for index, raw in enumerate(dashboard.get("widgets") or [])
    ]
    widgets.sort(key=lambda w: order.index(w["id"]) if w["id"] in order else len(order))
    for widget in widgets:
        item = items.get(widget["id"], {})
        w = min(COLUMNS, max(MIN_COLUMNS, int(item.get("w", DEFAULT_W))))
        if legacy:
            h = _rows(int(item.get("h", height_px(DEFAULT_H))))
            if x + w > COLUMNS:
                x, y, row_rows = 0, y + row_rows, 0
            place = {"x": x, "y": y, "w": w, "h": h}
            x, row_rows = x + w, max(row_rows, h)
        else:
            place = {
                "x": max(0, min(COLUMNS - w, int(item.get("x", 0)))),
                "y": max(0, int(item.get("y", 0))),
                "w": w,
                "h": max(MIN_ROWS, int(item.get("h", DEFAULT_H))),
            }
        out.append({**widget, **place})
    out.sort(key=lambda w: (w["y"], w["x"]))
    return out


def place_new(widgets: list[dict[str, Any]]) -> dict[str, int]:
    """Where a new widget goes: full left, under everything else."""
    bottom = max((int(w["y"]) + int(w["h"]) for w in widgets), default=0)
    return {"x": 0, "y": bottom, "w": DEFAULT_W, "h": DEFAULT_H}


def with_grid(widgets: list[dict[str, Any]], grid: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Widgets with the places the grid reports (``{i, x, y, w, h}`` items, i = ``cell-<id>``)."""
    places = {str(item.get("i", "")).removeprefix(CELL_PREFIX): item for item in grid or []}
    out = []
    for widget in widgets:
        item = places.get(widget["id"])
        if item is not None:
            widget = {**widget, **{k: int(item[k]) for k in ("x", "y", "w", "h") if k in item}}
        out.append(widget)
    return out


def grid_layout(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The react-grid-layout items of ``widgets``."""
    return [
        {
            "i": f"{CELL_PREFIX}{w['id']}",
            "x": int(w["x"]),
            "y": int(w["y"]),
            "w": int(w["w"]),
            "h": int(w["h"]),
            "minW": MIN_COLUMNS,
            "minH": MIN_ROWS,
        }
        for w in widgets
    ]


def split(widgets: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Builder widgets (with places) back into the stored widgets list and layout."""
    placed = sorted(widgets, key=lambda w: (int(w["y"]), int(w["x"])))
    stored = [{k: v for k, v in w.items() if k not in PLACE} for w in placed]
    layout = {
        "columns": COLUMNS,
        "row_height": ROW_HEIGHT,
        "items": [{"id": w["id"], **{k: int(w[k]) for k in PLACE}} for w in placed],
    }
    return stored, layout
