"""Devices (administration): search, filter, sort and page the registry; create, edit and delete devices.

Every read and write goes through :mod:`workbench.devices` (and keys through
:mod:`workbench.auth.api_keys`), the functions the REST API calls, with the session's user as the caller.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any, cast

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html

from workbench import devices as service
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.ui import connector_forms as forms
from workbench.ui import device_admin, timefmt
from workbench.ui.acting import caller
from workbench.ui.pages.overview import SEVERITY_COLORS, STATUS_COLORS
from workbench.ui.session import UiUser

PATH = "devices"
PERMISSION = "devices:write"  # the API permission behind this page (admins, engineers)
PAGE_SIZE = 25
ANY = "*"  # a filter's "any" choice (a Select's empty value is its disabled placeholder)
COLUMNS = (
    ("name", "Name"),
    ("type", "Type"),
    ("area", "Area"),
    ("protocol", "Protocol"),
    ("status", "Status"),
    ("alarm", "Alarm"),
    ("last_seen", "Last seen"),
)
PROTOCOLS = ("mqtt", "http", "modbus", "opcua", "sparkplug")
EDIT_FIELDS = (("name", "Name"), ("type", "Type"), ("area", "Area"), ("location", "Location"))


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The devices page: the filtered list, and the editor of the selected (or a new) device."""
    found = service.facets(current_platform(), caller())
    filters = [
        dbc.Col(
            html.Label(
                [
                    html.Span("Search devices", className="visually-hidden"),
                    dbc.Input(
                        id="dev-search", type="search", placeholder="Search name or location", debounce=0.3
                    ),
                ],
                className="w-100",
            ),
            md=4,
        )
    ] + [
        dbc.Col(
            html.Label(
                [
                    html.Span(f"Filter by {name}", className="visually-hidden"),
                    dbc.Select(
                        id=f"dev-filter-{name}",
                        options=[{"label": f"any {name}", "value": ANY}]
                        + [{"label": v, "value": v} for v in found[name]],
                        value=ANY,
                    ),
                ],
                className="w-100",
            ),
            md=2,
        )
        for name in service.FILTERS
    ]
    return (
        html.Div(
            [
                html.H1("Devices", className="h4"),
                dbc.Row(filters, className="g-2 mb-2"),
                dcc.Store(id="dev-view", data={"page": 1, "sort": "name", "descending": False}),
                dcc.Store(id="dev-refresh", data=0),
                dcc.Store(id="dev-selected", data={"id": None}),
                dcc.Loading(html.Div(id="dev-list"), delay_show=400),
                html.Div(
                    [
                        dbc.Button("Previous", id="dev-prev", size="sm", color="secondary", outline=True),
                        html.Span(id="dev-pager", className="mx-3 small"),
                        dbc.Button("Next", id="dev-next", size="sm", color="secondary", outline=True),
                        dbc.Button("New device", id="dev-new", size="sm", color="primary", className="ms-4"),
                    ],
                    className="d-flex align-items-center my-2",
                ),
                html.Div(id="dev-result", role="status"),
                html.Div(_editor(None), id="dev-editor"),
            ]
        ),
        [],
    )


def _header(name: str, label: str, view: dict[str, Any]) -> Any:
    arrow = ""
    if view["sort"] == name:
        arrow = " ▼" if view["descending"] else " ▲"
    sort = "none" if not arrow else "descending" if view["descending"] else "ascending"
    button = html.Button(
        label + arrow,
        id={"type": "dev-sort", "column": name},
        className="btn btn-link btn-sm p-0 text-reset fw-semibold",
    )
    return html.Th(button, **cast(dict[str, Any], {"aria-sort": sort}))


def list_view(found: dict[str, Any], view: dict[str, Any]) -> Any:
    """The page of devices as a table (names open the editor)."""
    rows = []
    for item in found["items"]:
        ident = str(item["id"])
        severity = item["alarm_severity"] if item["open_alarms"] else None
        alarm = f"{item['open_alarms']} open · {severity}" if severity else ""
        rows.append(
            html.Tr(
                [
                    html.Td(
                        html.Button(
                            item["name"],
                            id={"type": "dev-open", "id": ident},
                            className="btn btn-link btn-sm p-0 text-start",
                        )
                    ),
                    html.Td(item["type"]),
                    html.Td(item["area"] or ""),
                    html.Td(item["protocol"] or ""),
                    # Plain cells, coloured by class: the list stays light to send (a callback per keystroke).
                    html.Td(
                        item["status"],
                        className=f"text-{STATUS_COLORS.get(item['status'], 'warning')}-emphasis",
                    ),
                    html.Td(
                        alarm,
                        className=f"fw-semibold text-{SEVERITY_COLORS[severity]}-emphasis"
                        if severity
                        else None,
                        title=f"worst open alarm: {severity}" if severity else None,
                    ),
                    html.Td(timefmt.show(item["last_seen"]) if item["last_seen"] else "never"),
                ],
                className="wb-device-row",
                **cast(dict[str, Any], {"data-device": ident}),
            )
        )
    head = html.Thead(html.Tr([_header(name, label, view) for name, label in COLUMNS]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True, id="dev-table")


def _editor(device: dict[str, Any] | None) -> Any:
    """The form for ``device`` (None: a new one), its connector settings and, when saved, its keys."""
    device = device or {}
    protocol = device.get("protocol") or ""
    fields = [
        dbc.Col(
            [
                dbc.Label(label, html_for=f"dev-{name}", className="small mb-0"),
                dbc.Input(id=f"dev-{name}", value=device.get(name) or "", size="sm"),
            ],
            md=3,
        )
        for name, label in EDIT_FIELDS
    ]
    fields.append(
        dbc.Col(
            [
                dbc.Label("Protocol", html_for="dev-protocol", className="small mb-0"),
                dbc.Select(
                    id="dev-protocol",
                    options=[{"label": p, "value": p} for p in ("none", *PROTOCOLS)],
                    value=protocol or "none",
                    size="sm",
                ),
            ],
            md=3,
        )
    )
    fields.append(
        dbc.Col(
            [
                dbc.Label("Connection string", html_for="dev-connection_string", className="small mb-0"),
                dbc.Input(id="dev-connection_string", value=device.get("connection_string") or "", size="sm"),
            ],
            md=6,
        )
    )
    title = f"Edit {device['name']}" if device else "New device"
    actions: list[Any] = [dbc.Button("Save", id="dev-save", color="primary", size="sm", className="me-2")]
    actions.append(
        dbc.Button("Test connection", id="dev-test", color="secondary", size="sm", className="me-2")
    )
    if device:
        actions.append(dbc.Button("Delete", id="dev-delete", color="danger", outline=True, size="sm"))
    body = [
        html.H2(title, className="h6", id="dev-editor-title"),
        dcc.Store(id="dev-editing", data=str(device["id"]) if device else None),
        dbc.Row(fields, className="g-2 mb-2"),
        html.Div(_connector(protocol, device.get("config") or {}), id="dev-connector"),
        html.Div(actions, className="my-2"),
        dcc.ConfirmDialog(id="dev-confirm-delete", message=f"Delete {device.get('name')} and its data?"),
        dcc.Loading(html.Div(id="dev-test-result"), delay_show=300),
    ]
    if device:
        body.append(device_admin.keys_section(str(device["id"])))
    return dbc.Card(dbc.CardBody(body), className="mt-2", id="dev-card")


def _connector(protocol: str, config: dict[str, Any]) -> Any:
    if protocol == "modbus":
        return forms.modbus_form(config)
    if protocol == "opcua":
        return forms.opcua_form(config)
    return html.P("This protocol has no connector settings.", className="small text-muted")


def register(ui: dash.Dash) -> None:
    """Wire the list, the editor and the connector forms."""

    @ui.callback(
        Output("dev-list", "children"),
        Output("dev-pager", "children"),
        Output("dev-view", "data"),
        Input("dev-search", "value"),
        *[Input(f"dev-filter-{name}", "value") for name in service.FILTERS],
        Input({"type": "dev-sort", "column": ALL}, "n_clicks"),
        Input("dev-prev", "n_clicks"),
        Input("dev-next", "n_clicks"),
        Input("dev-refresh", "data"),
        State("dev-view", "data"),
    )
    def show_list(search: str | None, *args: Any) -> tuple[Any, str, dict[str, Any]]:
        chosen = dict(zip(service.FILTERS, args[: len(service.FILTERS)], strict=True))
        view = dict(args[-1] or {"page": 1, "sort": "name", "descending": False})
        trigger = ctx.triggered_id
        if isinstance(trigger, dict) and trigger.get("type") == "dev-sort":
            column = trigger["column"]
            view["descending"] = not view["descending"] if view["sort"] == column else False
            view["sort"] = column
        if trigger == "dev-prev":
            view["page"] = max(1, view["page"] - 1)
        elif trigger == "dev-next":
            view["page"] += 1
        elif trigger not in ("dev-refresh", None) and not isinstance(trigger, dict):
            view["page"] = 1  # a new search or filter starts at its first page
        filters = {**{k: v for k, v in chosen.items() if v and v != ANY}, "search": search or ""}
        platform, principal = current_platform(), caller()
        args_ = (platform, principal, filters, view["sort"], view["descending"])
        try:
            found = service.search(*args_, page=view["page"], page_size=PAGE_SIZE)
            pages = max(1, math.ceil(found["total"] / PAGE_SIZE))
            if view["page"] > pages:
                view["page"] = pages
                found = service.search(*args_, page=pages, page_size=PAGE_SIZE)
        except ApiError as error:
            return device_admin.error_box(error), "", view
        pager = f"Page {view['page']} of {pages} · {found['total']} devices"
        return list_view(found, view), pager, view

    @ui.callback(
        Output("dev-selected", "data", allow_duplicate=True),
        Input({"type": "dev-open", "id": ALL}, "n_clicks"),
        Input("dev-new", "n_clicks"),
        prevent_initial_call=True,
    )
    def pick(clicks: list[int | None], new: int | None) -> dict[str, Any]:
        # Its own callback: a redrawn list fires it with nothing clicked, which must not cancel an open.
        fired = {t["prop_id"]: t["value"] for t in ctx.triggered}
        clicked = [json.loads(p.rsplit(".", 1)[0]) for p, v in fired.items() if v and p.startswith("{")]
        if clicked:
            return {"id": clicked[0]["id"], "at": time.time()}
        if fired.get("dev-new.n_clicks"):
            return {"id": None, "at": time.time()}
        raise dash.exceptions.PreventUpdate

    @ui.callback(Output("dev-editor", "children"), Input("dev-selected", "data"), prevent_initial_call=True)
    def open_device(chosen: dict[str, Any] | None) -> Any:
        selected = (chosen or {}).get("id")
        if not selected:
            return _editor(None)
        try:
            device = service.get(current_platform(), caller(), uuid.UUID(selected))
        except ApiError as error:
            return device_admin.error_box(error)
        return _editor(device)

    @ui.callback(
        Output("dev-connector", "children"),
        Input("dev-protocol", "value"),
        prevent_initial_call=True,
    )
    def switch_protocol(protocol: str | None) -> Any:
        return _connector(protocol or "", {})

    device_admin.register(ui)
