"""Overview: devices by area and type with live status, and the plant KPIs."""

from __future__ import annotations

from itertools import groupby
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, dcc, html

from workbench.live.socket import live_server
from workbench.platform import current_platform
from workbench.ui import queries
from workbench.ui.session import UiUser, current_user

PATH = ""
PERMISSION = "devices:read"  # the API permission behind this page
STATUS_COLORS = {"online": "success", "offline": "secondary", "error": "danger"}
SEVERITY_COLORS = {"critical": "danger", "warning": "warning", "info": "info"}


def alarm_badge(alarm: dict[str, Any] | None, badge_id: str) -> Any:
    """A badge with the worst open alarm's severity (its colour) and how many alarms are open."""
    if not alarm:
        return html.Span(id=badge_id)
    count, severity = alarm["count"], alarm["severity"]
    badge = dbc.Badge(
        f"{count} {severity}" if count == 1 else f"{count} open · {severity}",
        color=SEVERITY_COLORS.get(severity, "secondary"),
        className="ms-2 wb-alarm",
    )
    return html.Span(badge, id=badge_id, title=f"worst open alarm: {severity}", **{"data-severity": severity})


def alarm_summary(alarms: dict[str, dict[str, Any]]) -> Any:
    """The plant's worst open alarm and the open count, linking to the alerts page."""
    top = queries.worst(alarms)
    if top is None:
        return dbc.Alert("No open alarms.", color="success", className="py-2", id="overview-alarm")
    alert = dbc.Alert(
        [
            html.Strong(f"{top['count']} open alarm{'s' if top['count'] != 1 else ''}"),
            f" · worst: {top['severity']} · ",
            dcc.Link("see alerts", href="/ui/alerts", className="alert-link"),
        ],
        color=SEVERITY_COLORS.get(top["severity"], "secondary"),
        className="py-2",
    )
    return html.Div(alert, id="overview-alarm", **{"data-severity": top["severity"]})


def status_badge(status: str, badge_id: str) -> Any:
    """A badge showing a device status, updated live by its id."""
    return dbc.Badge(status, id=badge_id, color=STATUS_COLORS.get(status, "warning"), className="ms-2")


def kpi(label: str, value_id: str) -> Any:
    """One KPI card."""
    return dbc.Col(
        dbc.Card(
            dbc.CardBody(
                [
                    html.Div(label, className="text-body-secondary small"),
                    html.Div("…", id=value_id, className="display-6"),
                ]
            ),
            className="wb-kpi",
        ),
        xs=12,
        sm=4,
    )


def page(user: UiUser) -> tuple[Any, list[dict[str, Any]]]:
    """The overview page."""
    engine = current_platform().engine
    devices = queries.list_devices(engine)
    alarms = queries.open_alarms(engine)
    statuses: dict[str, str] = {}
    sections = []
    for area, in_area in groupby(devices, key=lambda d: d["area"] or "Unassigned"):
        cards = []
        for device in in_area:
            badge_id = f"status-{device['id']}"
            statuses[str(device["id"])] = badge_id
            alarm = alarms.get(str(device["id"]))
            border = f" border-{SEVERITY_COLORS[alarm['severity']]}" if alarm else ""
            cards.append(
                dbc.Col(
                    dbc.Card(
                        dbc.CardBody(
                            [
                                html.Div(
                                    [
                                        dcc.Link(
                                            device["name"],
                                            href=f"/ui/device/{device['id']}",
                                            className="fw-semibold",
                                        ),
                                        status_badge(device["status"], badge_id),
                                        alarm_badge(alarm, f"alarm-{device['id']}"),
                                    ]
                                ),
                                html.Div(
                                    f"{device['type']} · {device['location'] or ''}",
                                    className="small text-body-secondary",
                                ),
                            ]
                        ),
                        className=f"wb-device-card h-100{border}",
                    ),
                    xs=12,
                    sm=6,
                    md=4,
                    xl=3,
                    className="mb-3",
                )
            )
        sections.append(html.Section([html.H2(area, className="h6 text-uppercase mt-2"), dbc.Row(cards)]))
    content = html.Div(
        [
            html.H1("Overview", className="h4"),
            dbc.Row(
                [
                    kpi("Online devices", "kpi-online"),
                    kpi("Points / s", "kpi-rate"),
                    kpi("Active alerts", "kpi-alerts"),
                ],
                className="mb-3 g-3",
            ),
            html.Div(alarm_summary(alarms), id="overview-alarm-box"),
            dcc.Interval(id="kpi-tick", interval=3000),
            html.Div(sections or dbc.Alert("No devices yet.", color="info"), id="device-grid"),
        ]
    )
    return content, [{"type": "devices", "statuses": statuses}]


def register(ui: dash.Dash) -> None:
    """Callbacks of the overview page."""

    @ui.callback(
        Output("kpi-online", "children"),
        Output("kpi-rate", "children"),
        Output("kpi-alerts", "children"),
        Output("overview-alarm-box", "children"),
        Input("kpi-tick", "n_intervals"),
    )
    def refresh_kpis(_: int | None) -> tuple[str, str, str, Any]:
        if current_user() is None:
            raise dash.exceptions.PreventUpdate
        platform = current_platform()
        figures = queries.kpis(platform.engine)
        live = live_server(platform)
        rate = live.meter.rate() if live else 0.0
        summary = alarm_summary(queries.open_alarms(platform.engine))
        online = f"{figures['online']} / {figures['devices']}"
        return online, f"{rate:,.0f}", str(figures["active_alerts"]), summary
