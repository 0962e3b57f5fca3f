"""Dashboards: the list, a dashboard's live view, and the drag-and-drop builder (react-grid-layout)."""

from __future__ import annotations

import uuid
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Input, Output, Patch, State, ctx, dcc, html
from dash_snap_grid import Grid

from workbench.platform import current_platform
from workbench.rules import alerts as alert_rows
from workbench.ui import dashboards_db, queries, timefmt, timerange, widgets
from workbench.ui.session import Forbidden, UiUser, current_user, require_user

PATH = "dashboards"
FOLLOW = "dashboard"  # a widget's window that follows the dashboard's range
ONE_KEY = ("gauge", "stat")
PERMISSION = "dashboards:read"  # the API permission behind this page


def page(user: UiUser, dashboard_id: str = "", mode: str = "", *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The list, one dashboard, or the builder (``new`` or ``<id>/edit``)."""
    engine = current_platform().engine
    if not dashboard_id:
        return _list(user), []
    if dashboard_id == "new":
        if not dashboards_db.may_edit(user, None):
            return dbc.Alert("Your role may not build dashboards.", color="danger", id="forbidden"), []
        return _builder(None, "", False, []), []
    dashboard = dashboards_db.load(engine, user, dashboard_id)
    if dashboard is None:
        return dbc.Alert("No such dashboard.", color="warning", id="not-found"), []
    items = dashboards_db.ordered(dashboard)
    if mode == "edit":
        if not dashboards_db.may_edit(user, dashboard):
            return dbc.Alert(
                "Only the owner, an engineer or an admin may edit this.", color="danger", id="forbidden"
            ), []
        return _builder(str(dashboard["id"]), dashboard["name"], dashboard["is_public"], items), []
    tools = []
    if dashboards_db.may_edit(user, dashboard):
        tools.append(
            dbc.Button(
                "Edit",
                href=f"/ui/dashboards/{dashboard['id']}/edit",
                id="dashboard-edit",
                size="sm",
                color="primary",
                outline=True,
            )
        )
    span = timerange.current(timefmt.current_zone())
    cells, targets = [], []
    reader = current_platform().read_engine()  # charts and lists: the replica when there is one
    for widget in items:
        content, live = widgets.render(reader, widget, span)
        cells.append(_view_cell(widget, widgets.card(widget, content)))
        targets.extend(live)
    content = html.Div(
        [
            html.Div(
                [html.H1(dashboard["name"], className="h4 me-3 mb-0", id="dashboard-title"), *tools],
                className="d-flex align-items-center mb-3",
            ),
            dcc.Store(id="dashboard-id", data=str(dashboard["id"])),
            _range_bar(span),
            # Alert lists acknowledge through this store (wb_live.js sets it; the callback below answers).
            dcc.Store(id="wal-ack"),
            html.Div(id="wal-ack-result"),
            html.Div(cells, className="wb-grid", id="dashboard-grid")
            if cells
            else dbc.Alert("No widgets yet.", color="info", id="dashboard-grid"),
        ]
    )
    # Every widget follows Socket.IO (throttled in the page): nothing refetches history after load.
    return content, widgets.live_subscriptions(targets)


def _range_bar(span: timerange.TimeRange) -> Any:
    # One range for the whole dashboard, in the URL: a preset follows now ("live"), from/to stays put.
    zone = timefmt.current_zone()
    presets = [{"label": k, "value": k} for k in timerange.PRESETS]
    return dbc.Row(
        [
            dbc.Col(
                dbc.RadioItems(
                    presets,
                    span.preset,
                    id="range-preset",
                    inline=True,
                    inputClassName="btn-check",
                    labelClassName="btn btn-sm btn-outline-secondary",
                    labelCheckedClassName="active",
                    className="btn-group",
                ),
                xs="auto",
            ),
            dbc.Col(
                dbc.InputGroup(
                    [
                        dbc.Label("from", html_for="range-from", className="input-group-text mb-0"),
                        dbc.Input(
                            id="range-from",
                            type="datetime-local",
                            value=timerange.local_text(span.start, zone),
                            size="sm",
                        ),
                        dbc.Label("to", html_for="range-to", className="input-group-text mb-0"),
                        dbc.Input(
                            id="range-to",
                            type="datetime-local",
                            value=timerange.local_text(span.end, zone),
                            size="sm",
                        ),
                        dbc.Button("Apply", id="range-apply", size="sm", color="secondary"),
                    ],
                    size="sm",
                ),
                xs=12,
                md="auto",
            ),
            dbc.Col(
                dbc.Badge(
                    "live" if span.live else "fixed range",
                    color="success" if span.live else "secondary",
                    id="range-live",
                    className="me-2",
                ),
                xs="auto",
            ),
            dbc.Col(
                html.Span(span.label, id="dashboard-range", className="small text-body-secondary"), xs="auto"
            ),
        ],
        className="g-2 mb-3 align-items-center",
        id="range-bar",
    )


def _view_cell(widget: dict[str, Any], card: Any) -> Any:
    # A CSS grid cell at the saved place; on phones the grid has one column (see wb.css).
    place = {"--x": widget["x"] + 1, "--y": widget["y"] + 1, "--w": widget["w"], "--h": widget["h"]}
    return html.Div(card, className="wb-cell", style=place, **{"data-wid": widget["id"]})


def _list(user: UiUser) -> Any:
    rows = dashboards_db.list_for(current_platform().engine, user)
    items = [
        dbc.ListGroupItem(
            [
                dcc.Link(row["name"], href=f"/ui/dashboards/{row['id']}", className="fw-semibold"),
                dbc.Badge(
                    "public" if row["is_public"] else "private",
                    color="info" if row["is_public"] else "secondary",
                    className="ms-2",
                ),
                html.Span(f" {len(row['widgets'] or [])} widgets", className="small text-body-secondary"),
            ],
        )
        for row in rows
    ]
    tools = []
    if dashboards_db.may_edit(user, None):
        tools.append(
            dbc.Button(
                "New dashboard", href="/ui/dashboards/new", id="dashboard-new", color="primary", size="sm"
            )
        )
    return html.Div(
        [
            html.Div(
                [html.H1("Dashboards", className="h4 me-3 mb-0"), *tools],
                className="d-flex align-items-center mb-3",
            ),
            dbc.ListGroup(items, id="dashboard-list")
            if items
            else dbc.Alert("No dashboards yet.", color="info"),
        ]
    )


def _builder(dashboard_id: str | None, name: str, public: bool, items: list[dict[str, Any]]) -> Any:
    engine = current_platform().engine
    device_options = [
        {"label": f"{d['name']} ({d['area'] or '-'})", "value": str(d["id"])}
        for d in queries.list_devices(engine)
    ]
    form = dbc.Card(
        dbc.CardBody(
            [
                html.H2("Add a widget", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(
                            dcc.Dropdown(
                                [{"label": v, "value": k} for k, v in dashboards_db.WIDGET_TYPES.items()],
                                "line",
                                id="widget-type",
                                clearable=False,
                            ),
                            xs=12,
                            md=2,
                        ),
                        dbc.Col(
                            dcc.Dropdown(device_options, id="widget-device", placeholder="device"),
                            xs=12,
                            md=3,
                        ),
                        dbc.Col(
                            [
                                dcc.Dropdown([], id="widget-keys", multi=True, placeholder="keys"),
                                html.Div(id="widget-keys-hint", className="form-text"),
                            ],
                            xs=12,
                            md=3,
                        ),
                        dbc.Col(
                            dcc.Dropdown(
                                list(dashboards_db.AGGREGATIONS), "avg", id="widget-agg", clearable=False
                            ),
                            xs=6,
                            md=1,
                        ),
                        dbc.Col(
                            dcc.Dropdown(
                                [{"label": "dashboard range", "value": FOLLOW}]
                                + [{"label": w, "value": w} for w in dashboards_db.WINDOWS],
                                FOLLOW,
                                id="widget-window",
                                clearable=False,
                            ),
                            xs=6,
                            md=1,
                        ),
                        dbc.Col(
                            dbc.Button("Add widget", id="widget-add", color="secondary", className="w-100"),
                            xs=12,
                            md=2,
                        ),
                    ],
                    className="g-2",
                ),
                dbc.Input(id="widget-title", placeholder="title (optional)", className="mt-2"),
            ]
        ),
        className="mb-3",
    )
    grid = Grid(
        id="builder-grid",
        cols=dashboards_db.COLUMNS,
        rowHeight=dashboards_db.ROW_HEIGHT,
        margin=[dashboards_db.MARGIN, dashboards_db.MARGIN],
        containerPadding=[0, 0],
        compactType="vertical",
        # Cards move by their header only, so a finger elsewhere still scrolls the page on a phone.
        draggableHandle=".wb-drag",
        draggableCancel=".wb-nodrag",
        resizeHandles=["se", "e", "s"],
        layout=dashboards_db.grid_layout(items),
        children=[_builder_cell(engine, w) for w in items],
    )
    return html.Div(
        [
            html.H1("Edit dashboard" if dashboard_id else "New dashboard", className="h4"),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Input(id="dashboard-name", value=name, placeholder="dashboard name"), xs=12, md=6
                    ),
                    dbc.Col(dbc.Switch(id="dashboard-public", label="Public", value=public), xs=6, md=2),
                    dbc.Col(dbc.Button("Save", id="dashboard-save", color="primary"), xs=6, md=2),
                ],
                className="g-2 mb-3 align-items-center",
            ),
            html.Div(id="dashboard-save-result"),
            form,
            html.P(
                "Drag a widget by its title bar; resize it from its right or bottom edge.",
                className="small text-body-secondary",
            ),
            dcc.Store(id="builder", data={"id": dashboard_id, "widgets": items}),
            html.Div(grid, id="builder-canvas", className="wb-builder"),
            html.Div(id="builder-sink", hidden=True),
        ]
    )


def _builder_cell(engine: Any, widget: dict[str, Any]) -> Any:
    remove = dbc.Button(
        "✕",
        id={"type": "w-remove", "wid": widget["id"]},
        size="sm",
        color="link",
        className="px-1 py-0 wb-nodrag",
        title="remove",
    )
    card = widgets.card(widget, widgets.body(engine, widget), remove)
    return html.Div(card, id=f"{dashboards_db.CELL_PREFIX}{widget['id']}", className="h-100")


def register(ui: dash.Dash) -> None:
    """Callbacks of the dashboards pages."""
    # A resized cell redraws its charts at the new size (Plotly follows window resizes only).
    ui.clientside_callback(
        ClientsideFunction(namespace="wb", function_name="fitPlots"),
        Output("builder-sink", "children"),
        Input("builder-grid", "layout"),
        prevent_initial_call=True,
    )

    @ui.callback(Output("widget-keys", "options"), Input("widget-device", "value"))
    def keys(device_id: str | None) -> list[str]:
        require_user("dashboards:read")
        return queries.device_keys(current_platform().engine, device_id) if device_id else []

    @ui.callback(
        Output("url", "search"),
        Input("range-preset", "value"),
        Input("range-apply", "n_clicks"),
        State("range-from", "value"),
        State("range-to", "value"),
        State("url", "search"),
        prevent_initial_call=True,
    )
    def choose_range(
        preset: str | None, clicks: int | None, start: str | None, end: str | None, now: str | None
    ) -> str:
        require_user("dashboards:read")
        # The bar is inserted with the page, and Dash calls this then too: only a change moves the URL.
        shown = timerange.parse(now, timefmt.current_zone())
        if ctx.triggered_id == "range-apply" and clicks and start and end:
            chosen = timerange.for_span(start, end)
        elif ctx.triggered_id == "range-preset" and preset and not (shown.live and shown.preset == preset):
            chosen = timerange.for_preset(preset)
        else:
            raise dash.exceptions.PreventUpdate
        if chosen == (now or ""):
            raise dash.exceptions.PreventUpdate
        return chosen

    @ui.callback(Output("wal-ack-result", "children"), Input("wal-ack", "data"), prevent_initial_call=True)
    def acknowledge(request: dict[str, Any] | None) -> Any:
        # The alert service the API's acknowledge calls (rules.alerts.change): its event updates every list.
        if not request or not request.get("id"):
            raise dash.exceptions.PreventUpdate
        try:
            user = require_user("alerts:ack")
            row = alert_rows.change(
                current_platform(),
                uuid.UUID(str(request["id"])),
                "acknowledged",
                uuid.UUID(user.user_id),
                None,
            )
        except (Forbidden, ValueError) as error:
            return dbc.Alert(str(error), color="danger", id="wal-ack-error")
        if row is None:
            return dbc.Alert("The alert is gone.", color="warning", id="wal-ack-error")
        return dbc.Alert(f"Acknowledged: {row['message']}", color="success", duration=4000, id="wal-ack-done")

    @ui.callback(
        Output("widget-keys", "multi"),
        Output("widget-keys", "placeholder"),
        Output("widget-keys-hint", "children"),
        Input("widget-type", "value"),
    )
    def one_key(kind: str | None) -> tuple[bool, str, str]:
        if kind in ONE_KEY:
            return False, "one key", "A gauge or a stat shows one key."
        if kind in ("line", "area"):
            return True, "keys", "Up to 4 keys, one chart each."
        return True, "keys", ""

    @ui.callback(
        Output("builder", "data", allow_duplicate=True),
        Output("builder-grid", "children", allow_duplicate=True),
        Output("builder-grid", "layout", allow_duplicate=True),
        Output("widget-keys", "value"),
        Output("widget-title", "value"),
        Input("widget-add", "n_clicks"),
        State("widget-type", "value"),
        State("widget-device", "value"),
        State("widget-keys", "value"),
        State("widget-agg", "value"),
        State("widget-window", "value"),
        State("widget-title", "value"),
        State("builder", "data"),
        State("builder-grid", "layout"),
        prevent_initial_call=True,
    )
    def add(
        clicks: int | None,
        kind: str,
        device: str | None,
        keys: list[str] | str | None,
        agg: str,
        window: str,
        title: str | None,
        state: dict[str, Any],
        grid: list[dict[str, Any]] | None,
    ) -> tuple[dict[str, Any], Any, list[dict[str, Any]], Any, str]:
        if not clicks:
            raise dash.exceptions.PreventUpdate
        require_user("dashboards:write")
        placed = dashboards_db.with_grid(state["widgets"], grid)
        widget = {
            "id": uuid.uuid4().hex[:10],
            "type": kind,
            "device_id": device,
            "keys": ([keys] if isinstance(keys, str) else list(keys or []))[: 1 if kind in ONE_KEY else 4],
            "aggregation": agg,
            "window": "" if window == FOLLOW else window,
            "title": title or "",
            **dashboards_db.place_new(placed),
        }
        # Patch appends the new card: the cards already on the canvas are neither re-queried nor redrawn.
        children = Patch()
        children.append(_builder_cell(current_platform().engine, widget))
        placed.append(widget)
        # The form is cleared for the next widget (the device stays: widgets often share one).
        return {**state, "widgets": placed}, children, dashboards_db.grid_layout(placed), None, ""

    @ui.callback(
        Output("builder", "data", allow_duplicate=True),
        Output("builder-grid", "children", allow_duplicate=True),
        Output("builder-grid", "layout", allow_duplicate=True),
        Input({"type": "w-remove", "wid": ALL}, "n_clicks"),
        State("builder", "data"),
        State("builder-grid", "layout"),
        prevent_initial_call=True,
    )
    def remove(
        clicks: list[int | None], state: dict[str, Any], grid: list[dict[str, Any]] | None
    ) -> tuple[dict[str, Any], Any, list[dict[str, Any]]]:
        if not ctx.triggered_id or not any(clicks) or not ctx.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate
        require_user("dashboards:write")
        wid = ctx.triggered_id["wid"]
        index = next((i for i, w in enumerate(state["widgets"]) if w["id"] == wid), None)
        if index is None:
            raise dash.exceptions.PreventUpdate
        children = Patch()
        del children[index]  # the store keeps the canvas's order, so the indexes agree
        placed = [w for w in dashboards_db.with_grid(state["widgets"], grid) if w["id"] != wid]
        return {**state, "widgets": placed}, children, dashboards_db.grid_layout(placed)

    @ui.callback(
        Output("url", "href"),
        Output("dashboard-save-result", "children"),
        Input("dashboard-save", "n_clicks"),
        State("dashboard-name", "value"),
        State("dashboard-public", "value"),
        State("builder", "data"),
        State("builder-grid", "layout"),
        prevent_initial_call=True,
    )
    def save(
        clicks: int | None,
        name: str | None,
        public: bool,
        state: dict[str, Any],
        grid: list[dict[str, Any]] | None,
    ) -> tuple[Any, Any]:
        user = current_user()
        # The builder is inserted by the router's callback, which Dash may count as an initial call.
        if user is None or not clicks:
            raise dash.exceptions.PreventUpdate
        if not name:
            return dash.no_update, dbc.Alert("Name the dashboard.", color="danger")
        stored, layout = dashboards_db.split(dashboards_db.with_grid(state["widgets"], grid))
        try:
            saved = dashboards_db.save(
                current_platform().engine, user, state.get("id"), name, bool(public), stored, layout
            )
        except PermissionError as error:
            return dash.no_update, dbc.Alert(str(error), color="danger")
        return f"/ui/dashboards/{saved}", dash.no_update
