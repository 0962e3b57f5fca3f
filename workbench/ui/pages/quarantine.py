"""Quarantine: points ingest rejected with their reasons, filtered by device and reason; replay selected."""

from __future__ import annotations

from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench import quarantine
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.ui import timefmt
from workbench.ui.acting import actor, refused
from workbench.ui.session import UiUser

PATH = "quarantine"
PERMISSION = quarantine.READ  # the API permission behind this page
COLUMNS = [
    {"field": "received_at", "headerName": "Received", "minWidth": 170},
    {"field": "device", "minWidth": 200},
    {"field": "source", "width": 100},
    {"field": "reason", "minWidth": 280, "flex": 2, "wrapText": True, "autoHeight": True},
    {"field": "payload", "minWidth": 200, "flex": 1},
    {"field": "replayed_at", "headerName": "Replayed", "minWidth": 170},
]
LISTED = 500
PAYLOAD_SHOWN = 300


def item_rows(device_id: str | None, reason: str | None, include_replayed: bool) -> list[dict[str, Any]]:
    """Quarantined items for the grid, newest first, as filtered."""
    engine = current_platform().engine
    names = {row["device_id"]: row["name"] for row in quarantine.devices_held(engine, actor())}
    items = quarantine.list_items(
        engine, actor(), device_id or None, (reason or "").strip() or None, None, include_replayed, LISTED
    )
    return [
        {
            "id": item["id"],
            "received_at": timefmt.show(item["received_at"]),
            "device": names.get(item["device_id"]) or item["device_id"] or "—",
            "device_id": item["device_id"],
            "source": item["source"],
            "reason": item["reason"],
            "payload": item["payload"][:PAYLOAD_SHOWN],
            "replayed_at": timefmt.show(item["replayed_at"]) if item["replayed_at"] else "",
        }
        for item in items
    ]


def device_options() -> list[dict[str, str]]:
    """The devices with items waiting, named when the device exists, with how many."""
    held = quarantine.devices_held(current_platform().engine, actor())
    return [
        {"label": f"{row['name'] or row['device_id']} ({row['items']})", "value": row["device_id"]}
        for row in held
    ]


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The quarantine page."""
    filters = dbc.Row(
        [
            dbc.Col(dcc.Dropdown(device_options(), None, id="q-device", placeholder="every device"), md=4),
            dbc.Col(dbc.Input(id="q-reason", placeholder="reason contains…", debounce=True), md=4),
            dbc.Col(dbc.Checkbox(id="q-replayed", label="include replayed", value=False), md=2),
            dbc.Col(dbc.Button("Refresh", id="q-refresh", color="secondary", outline=True), md=2),
        ],
        className="g-2 mb-2 align-items-center",
    )
    grid = dag.AgGrid(
        id="quarantine-grid",
        columnDefs=timefmt.zoned(COLUMNS, "received_at", "replayed_at"),
        rowData=item_rows(None, None, False),
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={
            "rowSelection": {
                "mode": "multiRow",
                "checkboxes": True,
                "headerCheckbox": True,
                "enableClickSelection": True,
            }
        },
        style={"height": "420px"},
        className="ag-theme-quartz",
    )
    tools: list[Any] = []
    if user.may(quarantine.REPLAY):
        tools = [
            dbc.Button("Replay selected", id="q-replay", color="primary", className="me-2"),
            html.Span(
                "Fix the cause first (create the device, declare the text key…): what is now valid is "
                "written to telemetry; the rest stays here with its reason brought up to date.",
                className="small text-body-secondary",
            ),
        ]
    content = [
        html.H1("Quarantine", className="h4"),
        filters,
        grid,
        html.Div(tools, className="my-2", id="q-tools"),
        html.Div(id="q-result"),
    ]
    return html.Div(content), []


def _outcome(result: dict[str, Any]) -> Any:
    replayed, still = result["replayed"], result["still_rejected"]
    lines: list[Any] = [f"Replayed {replayed} item(s), {result['points']} point(s) written to telemetry."]
    if still:
        lines.append(f" {still} still rejected:")
        lines.append(html.Ul([html.Li(f"#{e['id']}: {e['reason']}") for e in result["errors"][:20]]))
    return dbc.Alert(lines, color="success" if not still else "warning", id="q-done")


def register(ui: dash.Dash) -> None:
    """Callbacks of the quarantine page."""

    @ui.callback(
        Output("quarantine-grid", "rowData", allow_duplicate=True),
        Output("q-device", "options"),
        Input("q-device", "value"),
        Input("q-reason", "value"),
        Input("q-replayed", "value"),
        Input("q-refresh", "n_clicks"),
        prevent_initial_call=True,
    )
    def refilter(device_id: str | None, reason: str | None, include: bool, _: int) -> Any:
        try:
            return item_rows(device_id, reason, bool(include)), device_options()
        except ApiError as error:
            raise dash.exceptions.PreventUpdate from error

    @ui.callback(
        Output("q-result", "children"),
        Output("quarantine-grid", "rowData"),
        Input("q-replay", "n_clicks"),
        State("quarantine-grid", "selectedRows"),
        State("q-device", "value"),
        State("q-reason", "value"),
        State("q-replayed", "value"),
        prevent_initial_call=True,
    )
    def replay(
        _: int,
        selected: list[dict[str, Any]] | None,
        device_id: str | None,
        reason: str | None,
        include: bool,
    ) -> Any:
        if not selected:
            return dbc.Alert(
                "Select the rows to replay first.", color="warning", id="q-failed"
            ), dash.no_update
        try:
            ids = [int(row["id"]) for row in selected]
            result = quarantine.replay(current_platform(), actor(), ids)
        except ApiError as error:
            return refused(error, "q-failed"), dash.no_update
        except (KeyError, TypeError, ValueError):
            return dbc.Alert("Select rows of the grid.", color="danger", id="q-failed"), dash.no_update
        return _outcome(result), item_rows(device_id, reason, bool(include))
