"""Dashboard widgets: each renders from its binding (device, keys, aggregation, time window) and says
which Socket.IO events keep it live (``render`` returns the content and its live targets)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html
from sqlalchemy import Engine, select

from workbench.db.tables import alerts, devices
from workbench.rules.alerts import OPEN
from workbench.severity import SEVERITIES
from workbench.ui import charts, queries, timefmt
from workbench.ui.dashboards_db import WIDGET_TYPES, WINDOWS
from workbench.ui.pages.overview import STATUS_COLORS
from workbench.ui.session import current_user
from workbench.ui.timerange import TimeRange

ALERT_ROWS = 10
ALERT_KEEP = 30  # recent alerts an alert list holds, whatever their status (its filters choose)
ALERT_STATUSES = {
    "open": "open",
    "active": "active",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
    "": "any status",
}
SPARK_POINTS = 60
# The chart menu (on hover) saves what is shown as PNG; dragging on a chart zooms the dashboard's range.
GRAPH_CONFIG: Any = {
    "displayModeBar": "hover",
    "displaylogo": False,
    "responsive": True,
    "modeBarButtons": [["toImage"]],
    "toImageButtonOptions": {"format": "png"},
}
# Graphs fill their card and follow its size (react-grid-layout resizes cards without a callback).
FILL = {"height": "100%", "minHeight": 0}


def graph_id(widget: dict[str, Any], index: int) -> str:
    """Id of a widget's live chart for its ``index``-th key (keys may hold dots, ids may not)."""
    return f"w-{widget['id']}-g{index}"


def _graph(graph: str, figure: Any) -> Any:
    return dcc.Graph(id=graph, figure=figure, config=GRAPH_CONFIG, responsive=True, style=FILL)


def render(
    engine: Engine, widget: dict[str, Any], span: TimeRange | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """The inside of one widget card, and the live targets that keep it current.

    Charts show the dashboard's range ``span`` unless the widget names its own window (its override).
    """
    kind = widget.get("type")
    device_id: str = widget.get("device_id") or ""
    keys: list[str] = widget.get("keys") or []
    if kind in ("line", "area", "gauge", "stat", "table") and not device_id:
        return html.Div("Bind a device.", className="text-body-secondary"), []
    if kind in ("line", "area"):
        return _lines(engine, widget, device_id, keys, window(widget, span))
    if kind in ("gauge", "stat"):
        return _indicator(engine, widget, device_id, keys, window(widget, span))
    if kind == "table":
        return _table(engine, widget, device_id, keys)
    if kind == "alerts":
        return _alerts(engine, widget, device_id)
    if kind == "status":
        return _statuses(engine, widget)
    return html.Div(f"Unknown widget {kind}"), []


def body(engine: Engine, widget: dict[str, Any]) -> Any:
    """The inside of one widget card."""
    return render(engine, widget)[0]


def window(widget: dict[str, Any], span: TimeRange | None) -> TimeRange:
    """The range a widget shows: its own window when it names one, else the dashboard's."""
    own = widget.get("window")
    if own in WINDOWS or span is None:
        end = datetime.now(UTC)
        seconds = WINDOWS.get(own or "", WINDOWS["1h"])
        return TimeRange(end - timedelta(seconds=seconds), end, True, own, f"own window {own}")
    return span


def _lines(
    engine: Engine, widget: dict[str, Any], device_id: str, keys: list[str], span: TimeRange
) -> tuple[Any, list[dict[str, Any]]]:
    agg = widget.get("aggregation", "avg")
    units = {row["key"]: row["unit"] for row in queries.latest(engine, device_id)}
    graphs, targets = [], []
    for index, key in enumerate(keys[:4]):
        data = queries.series(engine, device_id, key, span.start, span.end, max_points=400)
        y = data[agg] if agg in ("min", "max") and data.get(agg) else data["y"]
        graph = graph_id(widget, index)
        name = f"{key} ({timefmt.unit(units.get(key))})" if units.get(key) else key
        figure = charts.line(data["x"], y, height=None, fill=widget.get("type") == "area", name=name)
        # Each series says its key and unit (a legend above the plot, out of the data's way).
        figure.update_layout(
            showlegend=True,
            legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
            margin={"t": 24},
        )
        graphs.append(html.Div(_graph(graph, figure), className="wb-fill"))
        if span.live:  # a fixed range stays as it is: live points would land outside it
            targets.append({"device_id": device_id, "key": key, "graph": graph})
    if not graphs:
        return html.Div("Pick keys.", className="text-body-secondary"), []
    return html.Div(graphs, className="wb-stack"), targets


def _indicator(
    engine: Engine, widget: dict[str, Any], device_id: str, keys: list[str], span: TimeRange
) -> tuple[Any, list[dict[str, Any]]]:
    latest = {row["key"]: row for row in queries.latest(engine, device_id)}
    key = keys[0] if keys else next(iter(latest), None)
    if key is None:
        return html.Div("No values yet.", className="text-body-secondary"), []
    value = latest[key]["value"] if key in latest else None
    unit = timefmt.unit(latest[key]["unit"]) if key in latest else ""
    title = f"{key} ({unit})" if unit else str(key)
    graph = f"w-{widget['id']}-{widget['type']}"
    # The title is text above the figure, wrapping as the card narrows: a Plotly title is cut at the edges.
    label = html.Div(title, className="wb-indicator-title", id=f"{graph}-title")
    if widget["type"] == "gauge":
        figure = charts.gauge(value, "", height=None)
        shown = html.Div([label, html.Div(_graph(graph, figure), className="wb-fill")], className="wb-stack")
        return shown, [{"device_id": device_id, "key": key, "gauge": graph}]
    data = queries.series(engine, device_id, key, span.start, span.end, max_points=SPARK_POINTS)
    figure = charts.stat(value, data["x"], data["y"], "", height=None)
    shown = html.Div([label, html.Div(_graph(graph, figure), className="wb-fill")], className="wb-stack")
    return shown, [{"device_id": device_id, "key": key, "stat": graph}]


def _table(
    engine: Engine, widget: dict[str, Any], device_id: str, keys: list[str]
) -> tuple[Any, list[dict[str, Any]]]:
    rows = [r for r in queries.latest(engine, device_id) if not keys or r["key"] in keys]
    lines, targets = [], []
    for index, r in enumerate(rows):
        ids = {"value": f"w-{widget['id']}-v{index}", "time": f"w-{widget['id']}-t{index}"}
        shown = r["value"] if r["value"] is not None else r.get("text_value")
        lines.append(
            html.Tr(
                [
                    html.Td(r["key"]),
                    html.Td(charts.fmt(shown), id=ids["value"], className="wb-live-value"),
                    html.Td(timefmt.unit(r["unit"])),
                    html.Td(timefmt.show(r["timestamp"]), id=ids["time"], className="small"),
                ]
            )
        )
        targets.append({"device_id": device_id, "key": r["key"], "value": ids})
    table = dbc.Table(
        [
            html.Thead(
                html.Tr([html.Th("key"), html.Th("value"), html.Th("unit"), html.Th(timefmt.header("time"))])
            ),
            html.Tbody(lines),
        ],
        size="sm",
        className="mb-0",
    )
    return table, targets


def alert_item(row: dict[str, Any]) -> dict[str, Any]:
    """An open alert as the alert-list widget keeps it (the page script renders the same fields)."""
    return {
        "id": str(row["id"]),
        "severity": row.get("severity") or "info",
        "message": row.get("message") or "",
        "status": row.get("status") or "active",
        "device_id": str(row["device_id"]) if row.get("device_id") else None,
    }


SEVERITY_CLASS = {
    "critical": "text-danger-emphasis",
    "warning": "text-warning-emphasis",
    "info": "text-info-emphasis",
}


def _alert_line(item: dict[str, Any], may_ack: bool) -> Any:
    # Same markup as wb_live.js's alertLine: the script re-renders the list from events and its filters.
    parts: list[Any] = [
        html.Span(f"[{item['severity']}] ", className=SEVERITY_CLASS.get(item["severity"], "")),
        item["message"],
        html.Span(f" {item['status']}", className="small text-body-secondary"),
    ]
    if may_ack and item["status"] == "active":
        parts.append(
            html.Button(
                "Ack",
                className="btn btn-sm btn-warning py-0 ms-2 wb-nodrag",
                **{"data-ack": item["id"]},
            )
        )
    return html.Li(parts, className="list-group-item py-1", **{"data-alert": item["id"]})


def _no_alerts() -> Any:
    return html.Li("No matching alerts.", className="list-group-item py-1 text-body-secondary")


def _alert_filter(list_id: str, field: str, options: dict[str, str], chosen: str) -> Any:
    # A plain select the page script reads (no server round trip): the list holds recent alerts of any status.
    attributes: dict[str, Any] = {
        "data-alert-filter": field,
        "data-list": list_id,
        "aria-label": f"{field} filter",
    }
    return html.Select(
        [html.Option(label, value=value, selected=value == chosen) for value, label in options.items()],
        className="form-select form-select-sm w-auto wb-nodrag",
        **attributes,
    )


def _alerts(engine: Engine, widget: dict[str, Any], device_id: str) -> tuple[Any, list[dict[str, Any]]]:
    with engine.connect() as conn:
        query = select(alerts).order_by(alerts.c.created_at.desc())
        if device_id:
            query = query.where(alerts.c.device_id == device_id)
        items = [alert_item(dict(r._mapping)) for r in conn.execute(query.limit(ALERT_KEEP))]
    user = current_user()
    may_ack = bool(user and user.may("alerts:ack"))
    list_id = f"w-{widget['id']}-alerts"
    visible = [i for i in items if i["status"] in OPEN][:ALERT_ROWS]
    filters = html.Div(
        [
            _alert_filter(list_id, "severity", {"": "any severity", **{s: s for s in SEVERITIES}}, ""),
            _alert_filter(list_id, "status", ALERT_STATUSES, "open"),
        ],
        className="d-flex gap-2 mb-1",
    )
    content = html.Div(
        [
            filters,
            html.Ul(
                [_alert_line(item, may_ack) for item in visible] or [_no_alerts()],
                id=list_id,
                className="list-group list-group-flush wb-alert-list",
            ),
        ]
    )
    target = {
        "alerts": {
            "id": list_id,
            "device_id": device_id or None,
            "items": items,
            "limit": ALERT_ROWS,
            "keep": ALERT_KEEP,
            "status": "open",
            "severity": "",
            "may_ack": may_ack,
        }
    }
    return content, [target]


def _statuses(engine: Engine, widget: dict[str, Any]) -> tuple[Any, list[dict[str, Any]]]:
    with engine.connect() as conn:
        found = conn.execute(
            select(devices.c.id, devices.c.name, devices.c.status).order_by(devices.c.name)
        ).all()
    cells, statuses = [], {}
    for index, (device, name, status) in enumerate(found):
        badge = f"w-{widget['id']}-s{index}"
        statuses[str(device)] = badge
        cells.append(
            html.Span(
                [
                    html.Span(name, className="small me-1"),
                    dbc.Badge(status, id=badge, color=STATUS_COLORS.get(status, "warning")),
                ],
                className="me-3 mb-1 d-inline-block",
            )
        )
    return html.Div(cells), [{"statuses": statuses}]


CHARTS = ("line", "area", "gauge", "stat")


def _exports(widget: dict[str, Any]) -> Any:
    # The chart menu: what is shown, as CSV (every series and point on screen, live ones too) or PNG;
    # wb_live.js builds both from the drawn figures (items ``w-<widget>-csv`` and ``-png``).
    wid = widget["id"]
    return dbc.DropdownMenu(
        [
            dbc.DropdownMenuItem("Export CSV", id=f"w-{wid}-csv", className="wb-export"),
            dbc.DropdownMenuItem("Export PNG", id=f"w-{wid}-png", className="wb-export"),
        ],
        label="⋮",
        size="sm",
        color="link",
        align_end=True,
        toggleClassName="py-0 px-1",
        className="wb-nodrag",
        id=f"w-{wid}-menu",
    )


def card(widget: dict[str, Any], content: Any, tools: Any = None) -> Any:
    """A widget's card around ``content``; it fills the grid cell it is placed in."""
    title = widget.get("title") or WIDGET_TYPES.get(widget.get("type", ""), "Widget")
    # In the builder (with tools) the title is the drag handle: keyboard users can focus it too.
    building = tools is not None
    handle: dict[str, Any] = (
        {"tabIndex": "0", "role": "button", "aria-label": f"Move {title}"} if building else {}
    )
    if not building and widget.get("type") in CHARTS:
        tools = _exports(widget)
    header = dbc.CardHeader(
        [
            # The title wraps rather than being cut with an ellipsis (stat and gauge titles say the key).
            html.Span(
                title,
                className="fw-semibold wb-widget-title" + (" wb-drag-handle" if building else ""),
                title=title,
                **handle,
            ),
            tools or "",
        ],
        className="d-flex justify-content-between align-items-center py-1 wb-drag",
    )
    return dbc.Card(
        # The body scrolls when its content is taller (a status grid of many devices): keyboard users reach it
        [header, html.Div(content, className="card-body wb-widget-body", tabIndex="0")],
        className="wb-widget h-100",
        id=f"widget-{widget['id']}",
    )


def live_subscriptions(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's Socket.IO subscriptions for its widgets' live targets (one per device, alerts, statuses)."""
    by_device: dict[str, dict[str, Any]] = {}
    statuses: dict[str, list[str]] = {}
    lists: list[dict[str, Any]] = []
    for target in targets:
        if "statuses" in target:
            for device, badge in target["statuses"].items():
                statuses.setdefault(device, []).append(badge)
            continue
        if "alerts" in target:
            lists.append(target["alerts"])
            continue
        sub = by_device.setdefault(
            target["device_id"],
            {
                "type": "device",
                "device_id": target["device_id"],
                "keys": [],
                "graphs": {},
                "values": {},
                "gauges": {},
                "stats": {},
            },
        )
        key = target["key"]
        if key not in sub["keys"]:
            sub["keys"].append(key)
        for kind, bucket in (
            ("graph", "graphs"),
            ("value", "values"),
            ("gauge", "gauges"),
            ("stat", "stats"),
        ):
            if kind in target:
                sub[bucket].setdefault(key, []).append(target[kind])
    subs: list[dict[str, Any]] = list(by_device.values())
    if statuses:
        subs.append({"type": "devices", "statuses": statuses})
    if lists:
        subs.append({"type": "alerts", "lists": lists})
    return subs
