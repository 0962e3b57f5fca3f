"""Alerts: a live list with filters; acknowledge or resolve with a comment; the evidence of an alert."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html
from sqlalchemy import select

from workbench.db.tables import alerts, devices, notebook_runs, rules
from workbench.platform import current_platform
from workbench.rules import alerts as alert_rows
from workbench.severity import SEVERITIES
from workbench.ui import charts, queries, timefmt
from workbench.ui.session import Forbidden, UiUser, current_user, require_user

PATH = "alerts"
PERMISSION = "alerts:read"  # the API permission behind this page
STATUSES = {
    "open": "Open",
    "active": "Active",
    "acknowledged": "Acknowledged",
    "resolved": "Resolved",
    "": "All",
}
COLUMNS = [
    {"field": "time", "headerName": "Time", "sort": "desc", "minWidth": 170},
    {"field": "severity", "width": 110},
    {"field": "status", "width": 130},
    {"field": "message", "flex": 1, "minWidth": 220},
    {"field": "device_link", "headerName": "Device", "cellRenderer": "markdown", "minWidth": 140},
    {"field": "rule_link", "headerName": "Rule", "cellRenderer": "markdown", "minWidth": 140},
    {"field": "key", "width": 120},
    {"field": "value", "width": 100},
    {"field": "threshold", "width": 110},
]


def _md(text: str | None) -> str:
    # Names are the user's own text: keep them from being read as markdown or HTML.
    return "".join("\\" + c if c in "\\`*_{}[]()<>#+-.!|" else c for c in (text or ""))


def links(row: dict[str, Any], user: UiUser | None) -> dict[str, str]:
    """Markdown links from an alert row to its device and rule (the rule's only for roles reading rules)."""
    device = f"[{_md(row.get('device'))}](/ui/device/{row['device_id']})" if row.get("device_id") else ""
    rule = ""
    if row.get("rule_id"):
        name = _md(row.get("rule") or "rule")
        rule = f"[{name}](/ui/rules/{row['rule_id']})" if user and user.may("rules:read") else name
    return {"device_link": device, "rule_link": rule}


def rows(status: str | None, severity: str | None) -> list[dict[str, Any]]:
    """Alerts for the grid, newest first, with device and rule names linking to them."""
    where = alert_rows.list_filter(status or None, severity or None, None, None, None, None)
    query = (
        select(alerts, devices.c.name.label("device"), rules.c.name.label("rule"))
        .select_from(
            alerts.outerjoin(devices, devices.c.id == alerts.c.device_id).outerjoin(
                rules, rules.c.id == alerts.c.rule_id
            )
        )
        .where(where)
        .order_by(alerts.c.created_at.desc())
        .limit(500)
    )
    with current_platform().engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(query)]
    zone, user = timefmt.current_zone(), current_user()
    return [
        {**(row := alert_rows.as_json(r)), "time": timefmt.show(row["timestamp"], zone), **links(row, user)}
        for r in found
    ]


def columns() -> list[dict[str, Any]]:
    """The grid's columns, the time's header naming the user's zone."""
    return timefmt.zoned(COLUMNS, "time")


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The alerts page."""
    filters = dbc.Row(
        [
            dbc.Col(
                dcc.Dropdown(
                    [{"label": v, "value": k} for k, v in STATUSES.items()],
                    "open",
                    id="alert-status-filter",
                    clearable=False,
                ),
                md=3,
            ),
            dbc.Col(
                dcc.Dropdown(list(SEVERITIES), None, id="alert-severity-filter", placeholder="any severity"),
                md=3,
            ),
        ],
        className="g-2 mb-2",
    )
    grid = dag.AgGrid(
        id="alerts-grid",
        columnDefs=columns(),
        rowData=rows("open", None),
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "filter": True, "resizable": True},
        dashGridOptions={
            "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
            "animateRows": False,
            "suppressColumnVirtualisation": True,
        },
        style={"height": "420px"},
        className="ag-theme-quartz",
    )
    actions: list[Any] = []
    if user.may("alerts:ack"):
        actions = [
            dbc.Card(
                dbc.CardBody(
                    [
                        dbc.Textarea(id="alert-comment", placeholder="comment", rows=2),
                        html.Div(
                            [
                                dbc.Button(
                                    "Acknowledge", id="alert-ack", color="warning", className="me-2 mt-2"
                                ),
                                dbc.Button("Resolve", id="alert-resolve", color="success", className="mt-2"),
                            ]
                        ),
                        html.Div(id="alert-action-result", className="mt-2"),
                    ]
                ),
                className="mb-3",
                id="alert-actions",
            )
        ]
    content = html.Div(
        [
            html.H1("Alerts", className="h4"),
            filters,
            dbc.Row(
                [
                    dbc.Col(grid, lg=8, className="mb-3"),
                    dbc.Col(
                        [
                            *actions,
                            dbc.Card(
                                dbc.CardBody(
                                    html.Div("Select an alert to see its evidence.", id="alert-evidence")
                                )
                            ),
                        ],
                        lg=4,
                    ),
                ]
            ),
        ]
    )
    return content, [{"type": "alerts", "severity": [], "grid": "alerts-grid"}]


def evidence(alert_id: str) -> Any:
    """Values around the alert and, when a notebook raised it, the executed notebook."""
    engine = current_platform().engine
    with engine.connect() as conn:
        row = conn.execute(select(alerts).where(alerts.c.id == uuid.UUID(alert_id))).first()
        run = None
        if row is not None and row.notebook_run_id:
            run = conn.execute(select(notebook_runs).where(notebook_runs.c.id == row.notebook_run_id)).first()
    if row is None:
        return "Alert not found."
    parts: list[Any] = [html.Div(row.message or "", className="fw-semibold mb-1")]
    when = row.triggered_at or row.created_at
    if row.device_id and row.key:
        data = queries.series(
            engine,
            str(row.device_id),
            row.key,
            when - timedelta(minutes=30),
            when + timedelta(minutes=30),
            max_points=400,
        )
        figure = charts.band(data, height=220)
        # The marker at the trigger instant, in the same wall-clock zone as the data (charts.band).
        figure.add_vline(x=timefmt.wall(when), line_dash="dot", line_color="red")
        if row.threshold is not None:
            figure.add_hline(y=row.threshold, line_dash="dash", line_color="orange")
        parts.append(dcc.Graph(figure=figure, config={"displayModeBar": False}, id="alert-evidence-graph"))
    if run is not None:
        parts.append(
            html.A(
                f"Executed notebook {run.notebook} ({run.status})",
                href=f"/api/v1/notebook-runs/{run.id}/html",
                target="_blank",
                id="alert-notebook-link",
            )
        )
    for label, _by, at, comment in (
        ("Acknowledged", row.acknowledged_by, row.acknowledged_at, row.ack_comment),
        ("Resolved", row.resolved_by, row.resolved_at, row.resolve_comment),
    ):
        if at:
            parts.append(
                html.Div(
                    f"{label} {timefmt.show(at)} ({timefmt.label()}): {comment or ''}", className="small"
                )
            )
    return parts


def register(ui: dash.Dash) -> None:
    """Callbacks of the alerts page."""

    @ui.callback(
        Output("alerts-grid", "rowData"),
        Input("alert-status-filter", "value"),
        Input("alert-severity-filter", "value"),
        prevent_initial_call=True,
    )
    def filtered(status: str, severity: str | None) -> list[dict[str, Any]]:
        require_user("alerts:read")
        return rows(status, severity)

    @ui.callback(
        Output("alert-evidence", "children"), Input("alerts-grid", "selectedRows"), prevent_initial_call=True
    )
    def show(selected: list[dict[str, Any]] | None) -> Any:
        require_user("alerts:read")
        if not selected:
            return "Select an alert to see its evidence."
        return evidence(selected[0]["id"])

    @ui.callback(
        Output("alert-action-result", "children"),
        Output("alerts-grid", "rowTransaction"),
        Input("alert-ack", "n_clicks"),
        Input("alert-resolve", "n_clicks"),
        State("alerts-grid", "selectedRows"),
        State("alert-comment", "value"),
        prevent_initial_call=True,
    )
    def act(_ack: int, _resolve: int, selected: list[dict[str, Any]] | None, comment: str | None) -> Any:
        try:
            user = require_user("alerts:ack")
        except Forbidden as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        if not selected:
            return dbc.Alert("Select an alert first.", color="warning"), dash.no_update
        status = "acknowledged" if dash.ctx.triggered_id == "alert-ack" else "resolved"
        platform = current_platform()
        try:
            row = alert_rows.change(
                platform,
                uuid.UUID(selected[0]["id"]),
                status,
                uuid.UUID(user.user_id),
                comment or None,
            )
        except ValueError as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        if row is None:
            return dbc.Alert("The alert is gone.", color="warning"), dash.no_update
        updated = {**selected[0], "status": row["status"]}
        return (
            dbc.Alert(f"Alert {status}.", color="success", duration=4000, id="alert-done"),
            {"update": [updated]},
        )
