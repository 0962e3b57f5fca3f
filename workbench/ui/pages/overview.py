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
STATUS_COLORS = {"online": "success", "offline": "secondary", "error": "danger"}


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
    devices = queries.list_devices(current_platform().engine)
    statuses: dict[str, str] = {}
    sections = []
    for area, in_area in groupby(devices, key=lambda d: d["area"] or "Unassigned"):
        cards = []
        for device in in_area:
            badge_id = f"status-{device['id']}"
            statuses[str(device["id"])] = badge_id
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
                                    ]
                                ),
                                html.Div(
                                    f"{device['type']} · {device['location'] or ''}",
                                    className="small text-body-secondary",
                                ),
                            ]
                        ),
                        className="wb-device-card h-100",
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
        Input("kpi-tick", "n_intervals"),
    )
    def refresh_kpis(_: int | None) -> tuple[str, str, str]:
        if current_user() is None:
            raise dash.exceptions.PreventUpdate
        platform = current_platform()
        figures = queries.kpis(platform.engine)
        live = live_server(platform)
        rate = live.meter.rate() if live else 0.0
        return f"{figures['online']} / {figures['devices']}", f"{rate:,.0f}", str(figures["active_alerts"])
