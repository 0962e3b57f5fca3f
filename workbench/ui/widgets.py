"""Dashboard widgets: each renders from its binding (device, keys, aggregation, time window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html
from sqlalchemy import Engine, select

from workbench.db.tables import alerts, devices
from workbench.ui import charts, queries
from workbench.ui.dashboards_db import WIDGET_TYPES, WINDOWS
from workbench.ui.pages.overview import STATUS_COLORS


def graph_id(widget: dict[str, Any], key: str) -> str:
    """Id of a widget's live chart for one key."""
    return f"w-{widget['id']}-{key}"


def body(engine: Engine, widget: dict[str, Any]) -> Any:
    """The inside of one widget card."""
    kind = widget.get("type")
    height = int(widget.get("h", 260)) - 60
    device_id: str = widget.get("device_id") or ""
    keys = widget.get("keys") or []
    if kind in ("line", "area", "gauge", "stat", "table") and not device_id:
        return html.Div("Bind a device.", className="text-body-secondary")
    if kind in ("line", "area"):
        end = datetime.now(UTC)
        start = end - timedelta(seconds=WINDOWS.get(widget.get("window", "1h"), 3600))
        graphs = []
        for key in keys[:4]:
            data = queries.series(engine, device_id, key, start, end, max_points=400)
            agg = widget.get("aggregation", "avg")
            y = data[agg] if agg in ("min", "max") and data.get(agg) else data["y"]
            figure = charts.line(
                data["x"], y, height=max(height // max(len(keys[:4]), 1), 120), fill=kind == "area"
            )
            graphs.append(
                dcc.Graph(id=graph_id(widget, key), figure=figure, config={"displayModeBar": False})
            )
        return graphs or html.Div("Pick keys.", className="text-body-secondary")
    if kind in ("gauge", "stat"):
        latest = {row["key"]: row for row in queries.latest(engine, device_id)}
        key = keys[0] if keys else next(iter(latest), None)
        value = latest[key]["value"] if key in latest else None
        title = f"{key} ({latest[key]['unit'] or ''})" if key in latest else str(key)
        if kind == "gauge":
            return dcc.Graph(
                figure=charts.gauge(value, title, height=height), config={"displayModeBar": False}
            )
        end = datetime.now(UTC)
        data = (
            queries.series(engine, device_id, key, end - timedelta(hours=1), end, max_points=60)
            if key
            else {"x": [], "y": []}
        )
        return dcc.Graph(
            figure=charts.stat(value, data["x"], data["y"], title, height=height),
            config={"displayModeBar": False},
        )
    if kind == "table":
        rows = [r for r in queries.latest(engine, device_id) if not keys or r["key"] in keys]
        return dbc.Table(
            [
                html.Thead(html.Tr([html.Th("key"), html.Th("value"), html.Th("unit"), html.Th("time")])),
                html.Tbody(
                    [
                        html.Tr(
                            [
                                html.Td(r["key"]),
                                html.Td(charts.fmt(r["value"])),
                                html.Td(r["unit"] or ""),
                                html.Td(r["timestamp"].isoformat(sep=" ")[:19]),
                            ]
                        )
                        for r in rows
                    ]
                ),
            ],
            size="sm",
            className="mb-0",
        )
    if kind == "alerts":
        with engine.connect() as conn:
            query = select(alerts).where(alerts.c.status != "resolved").order_by(alerts.c.created_at.desc())
            if device_id:
                query = query.where(alerts.c.device_id == device_id)
            rows = [dict(r._mapping) for r in conn.execute(query.limit(10))]
        if not rows:
            return html.Div("No open alerts.", className="text-body-secondary")
        return dbc.ListGroup(
            [dbc.ListGroupItem(f"[{r['severity']}] {r['message'] or ''}") for r in rows], flush=True
        )
    if kind == "status":
        with engine.connect() as conn:
            found = conn.execute(select(devices.c.name, devices.c.status).order_by(devices.c.name)).all()
        return html.Div(
            [
                dbc.Badge(
                    f"{name}: {status}", color=STATUS_COLORS.get(status, "warning"), className="me-1 mb-1"
                )
                for name, status in found
            ]
        )
    return html.Div(f"Unknown widget {kind}")


def card(engine: Engine, widget: dict[str, Any], tools: Any = None, refreshable: bool = False) -> Any:
    """A widget in its card, sized by its layout (w of 12 columns, h pixels)."""
    inside = body(engine, widget)
    if refreshable:
        inside = html.Div(inside, id={"type": "wbody", "wid": widget["id"]})
    title = widget.get("title") or WIDGET_TYPES.get(widget.get("type", ""), "Widget")
    header = dbc.CardHeader(
        [html.Span(title, className="fw-semibold"), tools or ""],
        className="d-flex justify-content-between align-items-center py-1",
    )
    return dbc.Col(
        dbc.Card(
            [header, dbc.CardBody(inside, style={"height": f"{widget.get('h', 260)}px"})],
            className="wb-widget h-100",
            id=f"widget-{widget['id']}",
        ),
        xs=12,
        md=int(widget.get("w", 6)),
        className="mb-3",
    )


def live_subscriptions(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Socket.IO subscriptions extending the line/area widgets' charts."""
    by_device: dict[str, dict[str, list[str]]] = {}
    for widget in widgets:
        if widget.get("type") in ("line", "area") and widget.get("device_id"):
            graphs = by_device.setdefault(widget["device_id"], {})
            for key in (widget.get("keys") or [])[:4]:
                graphs.setdefault(key, []).append(graph_id(widget, key))
    return [
        {"type": "device", "device_id": device, "keys": list(graphs), "graphs": graphs}
        for device, graphs in by_device.items()
    ]
