"""Device: live charts per key, latest values, aggregated history, config editor and commands."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench import devices as devices_service
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.protocols import commands
from workbench.secrets import DEVICE_CONFIG, redact
from workbench.ui import charts, queries, timefmt
from workbench.ui.acting import caller, refused
from workbench.ui.pages.alerts import links
from workbench.ui.pages.overview import SEVERITY_COLORS, alarm_badge, status_badge
from workbench.ui.session import Forbidden, UiUser, require_user
from workbench.ui.writes import send_command

PATH = "device"
PERMISSION = "devices:read"  # the API permission behind this page
LIVE_WINDOW = timedelta(minutes=10)
RANGES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "365d": timedelta(days=365),
}


def page(user: UiUser, device_id: str = "", *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The page of one device."""
    engine = current_platform().engine
    device = queries.get_device(engine, device_id)
    if device is None:
        return dbc.Alert("No such device.", color="warning", id="not-found"), []
    device_id = str(device["id"])
    latest = queries.latest(engine, device_id)
    keys = [row["key"] for row in latest]
    now = datetime.now(UTC)
    values: dict[str, dict[str, str]] = {}
    graphs: dict[str, str] = {}
    rows, live_charts = [], []
    for index, row in enumerate(latest):
        ids = {"value": f"lv-{index}", "quality": f"lq-{index}", "time": f"lt-{index}"}
        values[row["key"]] = ids
        shown = row["value"] if row["value"] is not None else row["text_value"]
        rows.append(
            html.Tr(
                [
                    html.Td(row["key"]),
                    html.Td(
                        charts.fmt(shown),
                        id=ids["value"],
                        className="wb-live-value",
                        **{"data-key": row["key"]},
                    ),
                    html.Td(timefmt.unit(row["unit"])),
                    html.Td("—" if row["quality"] is None else str(row["quality"]), id=ids["quality"]),
                    html.Td(timefmt.show(row["timestamp"]), id=ids["time"], className="small"),
                ]
            )
        )
        graphs[row["key"]] = f"live-graph-{index}"
        name = _series_name(row["key"], row["unit"])
        seed = queries.series(engine, device_id, row["key"], now - LIVE_WINDOW, now, max_points=600)
        live_charts.append(
            dbc.Col(
                dbc.Card(
                    dbc.CardBody(
                        [
                            html.Div(_series_name(row["key"], row["unit"]), className="small fw-semibold"),
                            dcc.Graph(
                                id=graphs[row["key"]],
                                figure=charts.line(seed["x"], seed["y"], height=220, name=name),
                                config={"displayModeBar": False},
                            ),
                        ]
                    )
                ),
                xs=12,
                lg=6,
                className="mb-3",
            )
        )
    table = dbc.Table(
        [
            html.Thead(
                html.Tr([html.Th(h) for h in ("key", "value", "unit", "quality", timefmt.header("time"))])
            ),
            html.Tbody(rows),
            # Keys first seen after the page loaded: wb_live.js adds their rows here.
            html.Tbody(id="latest-new"),
        ],
        size="sm",
        hover=True,
        responsive=True,
        id="latest-table",
    )
    history = dbc.Card(
        dbc.CardBody(
            [
                html.H2("History", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(
                            dcc.Dropdown(keys, keys[0] if keys else None, id="history-key", clearable=False),
                            md=4,
                        ),
                        dbc.Col(dbc.RadioItems(list(RANGES), "24h", id="history-range", inline=True), md=8),
                    ],
                    className="g-2 mb-2",
                ),
                dcc.Graph(id="history-graph", config={"displayModeBar": False}),
            ]
        ),
        className="mb-3",
    )
    sections: list[Any] = [
        html.H1(
            [
                device["name"],
                status_badge(device["status"], "device-status"),
                alarm_badge(queries.open_alarms(engine, device_id).get(device_id), "device-alarm"),
            ],
            className="h4",
        ),
        html.Div(
            f"{device['type']} · {device['area'] or ''} · {device['location'] or ''}",
            className="text-body-secondary mb-3",
        ),
        *(
            [dbc.Alert(device["status_detail"], color="warning", id="device-status-detail", className="py-2")]
            if device.get("status_detail")
            else []
        ),
        dcc.Store(id="device-id", data=device_id),
        dbc.Row(
            [
                dbc.Col(dbc.Card(dbc.CardBody(table)), lg=5, className="mb-3"),
                dbc.Col(dbc.Row(live_charts), lg=7),
            ]
        ),
        history,
        _alerts(user, queries.device_alerts(engine, device_id)),
    ]
    if user.may("devices:write"):
        # Secrets (an OPC-UA login) show as {"set": true}: left so, they are kept on save.
        sections.append(_config_editor(redact(device.get("config") or {}, DEVICE_CONFIG)))
    if user.may("devices:command"):
        sections.append(_command_form(command_table(commands.recent(engine, device["id"], 10))))
    sub = {
        "type": "device",
        "device_id": device_id,
        "keys": [],
        "graphs": graphs,
        "values": values,
        "status": "device-status",
        "new_keys": "latest-new",
    }
    return html.Div(sections), [sub]


def _alerts(user: UiUser, found: list[dict[str, Any]]) -> Any:
    # Open alerts first, then recent ones; each links to its rule (for roles that read rules).
    if not found:
        body: Any = html.Div("No alerts for this device.", className="text-body-secondary")
    else:
        lines = []
        for row in found:
            rule = links({**row, "device_id": None}, user)["rule_link"]
            lines.append(
                html.Tr(
                    [
                        html.Td(timefmt.show(row["triggered_at"] or row["created_at"]), className="small"),
                        html.Td(
                            dbc.Badge(
                                row["severity"], color=SEVERITY_COLORS.get(row["severity"], "secondary")
                            )
                        ),
                        html.Td(row["status"]),
                        html.Td(row["message"] or ""),
                        html.Td(dcc.Markdown(rule, className="mb-0 wb-md") if rule else ""),
                    ],
                    **{"data-alert": str(row["id"]), "data-status": row["status"]},
                )
            )
        heads = (timefmt.header("time"), "severity", "status", "message", "rule")
        body = dbc.Table(
            [html.Thead(html.Tr([html.Th(h) for h in heads])), html.Tbody(lines)],
            size="sm",
            responsive=True,
            className="mb-0",
        )
    return dbc.Card(
        dbc.CardBody([html.H2("Alerts: open and recent", className="h6"), body]),
        className="mb-3",
        id="device-alerts",
    )


def _series_name(key: str, unit: str | None) -> str:
    return f"{key} ({timefmt.unit(unit)})" if unit else key


def _config_editor(config: dict[str, Any]) -> Any:
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("Configuration", className="h6"),
                dbc.Label("Configuration as JSON", html_for="config-text", className="visually-hidden"),
                dbc.Textarea(
                    id="config-text", value=json.dumps(config, indent=2), rows=8, className="font-monospace"
                ),
                dbc.Button("Save configuration", id="config-save", className="mt-2", color="primary"),
                html.Div(id="config-result", className="mt-2"),
            ]
        ),
        className="mb-3",
        id="config-editor",
    )


def command_table(rows: list[dict[str, Any]]) -> Any:
    """The device's recent commands and their status (sent, acknowledged, failed with the reason)."""
    if not rows:
        return html.Div("No commands yet.", className="text-body-secondary small")
    colors = {"acknowledged": "success", "sent": "info", "failed": "danger"}
    head = html.Thead(html.Tr([html.Th("when"), html.Th("command"), html.Th("status"), html.Th("why")]))
    body = html.Tbody(
        [
            html.Tr(
                [
                    html.Td(f"{row['created_at']:%Y-%m-%d %H:%M:%S}"),
                    html.Td(f"{row['command']} {json.dumps(row['params'])[:80]}"),
                    html.Td(dbc.Badge(row["status"], color=colors.get(row["status"], "secondary"))),
                    html.Td(row["reason"] or ""),
                ]
            )
            for row in rows
        ]
    )
    return dbc.Table(
        [head, body],
        size="sm",
        className="mt-2 mb-0",
        id="command-table",
    )


def _command_form(table: Any) -> Any:
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("Send command", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(dbc.Input(id="command-name", placeholder="command (e.g. reset)"), md=4),
                        dbc.Col(
                            dbc.Input(
                                id="command-params", placeholder='parameters as JSON, e.g. {"speed": 2}'
                            ),
                            md=6,
                        ),
                        dbc.Col(dbc.Button("Send", id="command-send", color="warning"), md=2),
                    ],
                    className="g-2",
                ),
                html.Div(id="command-result", className="mt-2"),
                html.Div(table, id="command-list"),
            ]
        ),
        className="mb-3",
        id="command-form",
    )


def register(ui: dash.Dash) -> None:
    """Callbacks of the device page."""

    @ui.callback(
        Output("history-graph", "figure"),
        Input("history-key", "value"),
        Input("history-range", "value"),
        State("device-id", "data"),
    )
    def history(key: str | None, span: str, device_id: str) -> Any:
        require_user("telemetry:read")
        if not key:
            return charts.line([], [])
        end = datetime.now(UTC)
        data = queries.series(current_platform().read_engine(), device_id, key, end - RANGES[span], end)
        return charts.band(data, height=300)

    @ui.callback(
        Output("config-result", "children"),
        Input("config-save", "n_clicks"),
        State("config-text", "value"),
        State("device-id", "data"),
        prevent_initial_call=True,
    )
    def save_config(_: int, text: str, device_id: str) -> Any:
        try:
            require_user("devices:write")
            config = json.loads(text or "{}")
            if not isinstance(config, dict):
                raise ValueError("configuration must be a JSON object")
            # The service behind POST /api/v1/devices/{id}/config: checked, stored sealed, published retained.
            devices_service.push_config(current_platform(), caller(), uuid.UUID(device_id), config)
        except (Forbidden, ValueError) as error:
            return dbc.Alert(str(error), color="danger")
        except ApiError as error:
            return refused(error, "config-refused")
        return dbc.Alert("Saved.", color="success", duration=4000)

    @ui.callback(
        Output("command-result", "children"),
        Output("command-list", "children"),
        Input("command-send", "n_clicks"),
        State("command-name", "value"),
        State("command-params", "value"),
        State("device-id", "data"),
        prevent_initial_call=True,
    )
    def command(_: int, name: str | None, params: str | None, device_id: str) -> Any:
        try:
            user = require_user("devices:command")
            if not name:
                raise ValueError("name the command")
            parameters = json.loads(params) if params else {}
            if not isinstance(parameters, dict):
                raise ValueError("parameters must be a JSON object")
            sent = send_command(current_platform(), device_id, name, parameters, user.user_id)
        except (Forbidden, ValueError, ConnectionError) as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        rows = commands.recent(current_platform().engine, sent["device_id"], 10)
        return dbc.Alert(f"{name}: {sent['status']}.", color="success", duration=4000), command_table(rows)
