"""Rules: the list, enable/disable, a form for threshold, comparison and statistical rules, and backtests."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html
from sqlalchemy import select

from workbench.db.tables import devices, rules
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.rules import service
from workbench.rules.backtest import InvalidRule, run_backtest
from workbench.rules.conditions import OPERATORS
from workbench.rules.statistical import FUNCTIONS
from workbench.rules.types import Rule, form_types, rule_type
from workbench.severity import SEVERITIES
from workbench.ui import charts, queries, timefmt
from workbench.ui.session import Forbidden, UiUser, require_user

PATH = "rules"
PERMISSION = "rules:read"  # the API permission behind this page
COLUMNS = [
    {"field": "name", "flex": 1, "minWidth": 160},
    {"field": "type", "width": 120},
    {"field": "device", "width": 150},
    {"field": "enabled", "width": 100},
    {"field": "severity", "width": 110},
    {"field": "trigger_count", "headerName": "Triggers", "width": 100},
    {"field": "last_triggered", "headerName": "Last triggered", "minWidth": 170},
]


def rule_rows() -> list[dict[str, Any]]:
    """Rules for the grid, highest priority first."""
    query = (
        select(rules, devices.c.name.label("device"))
        .select_from(rules.outerjoin(devices, devices.c.id == rules.c.device_id))
        .order_by(rules.c.priority.desc(), rules.c.name)
    )
    with current_platform().engine.connect() as conn:
        found = [dict(r._mapping) for r in conn.execute(query)]
    out = []
    for row in found:
        rule = Rule.from_row(row)
        out.append(
            {
                "id": str(row["id"]),
                "name": row["name"],
                "type": row["type"],
                "device": row["device"],
                "enabled": row["enabled"],
                "severity": rule.severity,
                "trigger_count": row["trigger_count"],
                "last_triggered": timefmt.show(row["last_triggered"]) if row["last_triggered"] else None,
            }
        )
    return out


def page(user: UiUser, rule_id: str = "", *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The rules page (``rules/<id>`` opens with that rule selected)."""
    grid = dag.AgGrid(
        id="rules-grid",
        columnDefs=timefmt.zoned(COLUMNS, "last_triggered"),
        rowData=rule_rows(),
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={
            "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
        },
        style={"height": "320px"},
        className="ag-theme-quartz",
        **({"selectedRows": {"ids": [rule_id]}} if rule_id else {}),
    )
    tools: list[Any] = [
        dbc.Button("Backtest 7 days", id="rule-backtest", color="secondary", className="me-2")
    ]
    if user.may("rules:write"):
        tools += [
            dbc.Button("Enable", id="rule-enable", color="success", className="me-2"),
            dbc.Button("Disable", id="rule-disable", color="danger", outline=True),
        ]
    sections: list[Any] = [
        html.H1("Rules", className="h4"),
        grid,
        html.Div(tools, className="my-2", id="rule-tools"),
        html.Div(id="rule-result"),
        dcc.Loading(dcc.Graph(id="rule-backtest-graph", config={"displayModeBar": False})),
    ]
    if user.may("rules:write"):
        sections.append(_form())
    return html.Div(sections), []


def _form() -> Any:
    options = [
        {"label": d["name"], "value": str(d["id"])} for d in queries.list_devices(current_platform().engine)
    ]
    field = dbc.Col
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("New rule", className="h6"),
                dbc.Row(
                    [
                        field(dbc.Input(id="rule-name", placeholder="name"), md=4),
                        field(
                            dcc.Dropdown(
                                form_types(),
                                "threshold",
                                id="rule-type",
                                clearable=False,
                            ),
                            md=2,
                        ),
                        field(
                            dcc.Dropdown(
                                list(SEVERITIES),
                                "warning",
                                id="rule-severity",
                                clearable=False,
                            ),
                            md=2,
                        ),
                        field(dbc.Input(id="rule-message", placeholder="message"), md=4),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Row(
                    [
                        field(dcc.Dropdown(options, id="rule-device", placeholder="device"), md=3),
                        field(
                            [
                                dbc.Input(id="rule-key", placeholder="key"),
                                html.Div(id="rule-key-hint", className="form-text text-warning-emphasis"),
                            ],
                            md=2,
                        ),
                        field(dcc.Dropdown(list(OPERATORS), ">", id="rule-operator", clearable=False), md=1),
                        field(dbc.Input(id="rule-value", type="number", placeholder="value"), md=2),
                        field(
                            dbc.Input(
                                id="rule-duration", type="number", placeholder="for seconds (threshold)"
                            ),
                            md=2,
                        ),
                    ],
                    className="g-2 mb-2",
                ),
                dbc.Row(
                    [
                        field(
                            dcc.Dropdown(list(FUNCTIONS), "stddev", id="rule-function", clearable=False), md=2
                        ),
                        field(
                            dbc.Input(
                                id="rule-window", placeholder="window (statistical), e.g. 1h", value="1h"
                            ),
                            md=3,
                        ),
                        field(
                            dcc.Dropdown(
                                options, id="rule-right-device", placeholder="right device (comparison)"
                            ),
                            md=3,
                        ),
                        field(dbc.Input(id="rule-right-key", placeholder="right key (comparison)"), md=2),
                        field(
                            dbc.Button("Create rule", id="rule-create", color="primary", className="w-100"),
                            md=2,
                        ),
                    ],
                    className="g-2",
                ),
                html.Div(id="rule-create-result", className="mt-2"),
            ]
        ),
        className="mt-3",
        id="rule-form",
    )


def unsent_key_warning(values: dict[str, Any]) -> str:
    """A warning naming each key its target device never sent (the rule would never fire), else empty."""
    platform = current_platform()
    found = {}
    for device, key in (
        (values.get("device"), values.get("key")),
        (values.get("right_device"), values.get("right_key")),
    ):
        if device and key:
            found.update(service.unsent_keys(platform, [device], [key]))
    return " ".join(
        f"The device never sent {key!r} (it sends: {', '.join(sent[:8]) or 'nothing yet'})."
        for key, sent in found.items()
    )


def rule_body(values: dict[str, Any]) -> dict[str, Any]:
    """A rules row from the form's values (design §5.1 shapes)."""
    kind = values["type"]
    action = {"type": "alert", "severity": values["severity"], "message": values.get("message") or ""}
    condition, device = rule_type(kind).from_form(values)
    return {
        "name": values.get("name") or "",
        "type": kind,
        "condition": condition,
        "action": action,
        "device_id": device,
    }


def _backtest_figure(row: dict[str, Any]) -> go.Figure:
    end = datetime.now(UTC)
    start = end - timedelta(days=7)
    try:
        result = run_backtest(current_platform(), Rule.from_row(row), start, end)
    except InvalidRule as error:  # a rule stored before its check existed: say why, run nothing
        refused = charts.line([], [], height=280)
        lines = [escape(line) for line in textwrap.wrap(str(error), 90)[:4]]  # caller-chosen text
        refused.update_layout(title={"text": "<br>".join(lines), "font": {"size": 12}}, margin={"t": 80})
        return refused
    key = (row["condition"] or {}).get("key")
    device = str(row["device_id"]) if row["device_id"] else None
    figure = (
        charts.band(queries.series(current_platform().read_engine(), device, key, start, end), height=280)
        if device and key
        else charts.line([], [], height=280)
    )
    would = result.get("alerts", [])
    figure.add_trace(
        go.Scatter(
            x=timefmt.walls([a.get("triggered_at") for a in would]),
            y=[a.get("value") for a in would],
            mode="markers",
            marker={"color": "red", "size": 9, "symbol": "x"},
            name="would-be alerts",
        )
    )
    figure.update_layout(
        title={"text": f"{len(would)} would-be alerts over 7 days", "font": {"size": 13}}, margin={"t": 30}
    )
    return figure


def register(ui: dash.Dash) -> None:
    """Callbacks of the rules page."""

    @ui.callback(
        Output("rule-result", "children"),
        Output("rules-grid", "rowData"),
        Input("rule-enable", "n_clicks"),
        Input("rule-disable", "n_clicks"),
        State("rules-grid", "selectedRows"),
        prevent_initial_call=True,
    )
    def toggle(_on: int, _off: int, selected: list[dict[str, Any]] | None) -> Any:
        try:
            require_user("rules:write")
        except Forbidden as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        if not selected:
            return dbc.Alert("Select a rule first.", color="warning"), dash.no_update
        enabled = dash.ctx.triggered_id == "rule-enable"
        try:
            service.set_enabled(current_platform(), uuid.UUID(selected[0]["id"]), enabled)
        except ApiError as error:
            return dbc.Alert(service.message(error), color="danger"), dash.no_update
        word = "enabled" if enabled else "disabled"
        return dbc.Alert(f"Rule {word}.", color="success", duration=4000, id="rule-done"), rule_rows()

    @ui.callback(
        Output("rule-backtest-graph", "figure"),
        Input("rule-backtest", "n_clicks"),
        State("rules-grid", "selectedRows"),
        prevent_initial_call=True,
    )
    def show_backtest(_: int, selected: list[dict[str, Any]] | None) -> Any:
        require_user("rules:read")
        if not selected:
            raise dash.exceptions.PreventUpdate
        with current_platform().engine.connect() as conn:
            row = conn.execute(select(rules).where(rules.c.id == uuid.UUID(selected[0]["id"]))).first()
        if row is None:
            raise dash.exceptions.PreventUpdate
        return _backtest_figure(dict(row._mapping))

    @ui.callback(
        Output("rule-key-hint", "children"),
        Input("rule-device", "value"),
        Input("rule-key", "value"),
        Input("rule-right-device", "value"),
        Input("rule-right-key", "value"),
        prevent_initial_call=True,
    )
    def key_hint(device: str | None, key: str | None, right: str | None, right_key: str | None) -> str:
        require_user("rules:write")
        return unsent_key_warning(
            {"device": device, "key": key, "right_device": right, "right_key": right_key}
        )

    @ui.callback(
        Output("rule-create-result", "children"),
        Output("rules-grid", "rowData", allow_duplicate=True),
        Output("rule-name", "value"),
        Output("rule-message", "value"),
        Output("rule-key", "value"),
        Output("rule-value", "value"),
        Input("rule-create", "n_clicks"),
        State("rule-name", "value"),
        State("rule-type", "value"),
        State("rule-severity", "value"),
        State("rule-message", "value"),
        State("rule-device", "value"),
        State("rule-key", "value"),
        State("rule-operator", "value"),
        State("rule-value", "value"),
        State("rule-duration", "value"),
        State("rule-function", "value"),
        State("rule-window", "value"),
        State("rule-right-device", "value"),
        State("rule-right-key", "value"),
        prevent_initial_call=True,
    )
    def create(_: int, *values: Any) -> Any:
        names = (
            "name",
            "type",
            "severity",
            "message",
            "device",
            "key",
            "operator",
            "value",
            "duration",
            "function",
            "window",
            "right_device",
            "right_key",
        )
        keep = (dash.no_update,) * 5
        try:
            user = require_user("rules:write")
        except Forbidden as error:
            return dbc.Alert(str(error), color="danger"), *keep
        body = rule_body(dict(zip(names, values, strict=True)))
        try:
            service.create_rule(current_platform(), body, uuid.UUID(user.user_id))
        except ApiError as error:  # the API's answer (422 naming fields, 409 a name in use), as a line
            return dbc.Alert(service.message(error), color="danger"), *keep
        # The form is cleared for the next rule (device, type and severity stay: rules often share them).
        created = dbc.Alert("Rule created.", color="success", duration=4000, id="rule-created")
        return created, rule_rows(), "", "", "", None
