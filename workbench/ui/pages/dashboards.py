"""Dashboards: the list, a dashboard's live view, and the builder (add, remove, move, resize widgets)."""

from __future__ import annotations

import uuid
from typing import Any

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, ctx, dcc, html

from workbench.platform import current_platform
from workbench.ui import dashboards_db, queries, widgets
from workbench.ui.session import UiUser, current_user, require_user

PATH = "dashboards"
REFRESH_MS = 30_000


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
    cards = [_view_card(engine, w) for w in items]
    content = html.Div(
        [
            html.Div(
                [html.H1(dashboard["name"], className="h4 me-3 mb-0", id="dashboard-title"), *tools],
                className="d-flex align-items-center mb-3",
            ),
            dcc.Store(id="dashboard-id", data=str(dashboard["id"])),
            dcc.Interval(id="dashboard-tick", interval=REFRESH_MS),
            dbc.Row(cards or [dbc.Col(dbc.Alert("No widgets yet.", color="info"))], id="dashboard-grid"),
        ]
    )
    return content, widgets.live_subscriptions(items)


def _view_card(engine: Any, widget: dict[str, Any]) -> Any:
    # Line and area charts are extended live by Socket.IO and never refetched; the rest refresh slowly.
    return widgets.card(engine, widget, refreshable=widget.get("type") not in ("line", "area"))


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
                            md=2,
                        ),
                        dbc.Col(dcc.Dropdown(device_options, id="widget-device", placeholder="device"), md=3),
                        dbc.Col(dcc.Dropdown([], id="widget-keys", multi=True, placeholder="keys"), md=3),
                        dbc.Col(
                            dcc.Dropdown(
                                list(dashboards_db.AGGREGATIONS), "avg", id="widget-agg", clearable=False
                            ),
                            md=1,
                        ),
                        dbc.Col(
                            dcc.Dropdown(
                                list(dashboards_db.WINDOWS), "1h", id="widget-window", clearable=False
                            ),
                            md=1,
                        ),
                        dbc.Col(
                            dbc.Button("Add widget", id="widget-add", color="secondary", className="w-100"),
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
    return html.Div(
        [
            html.H1("Edit dashboard" if dashboard_id else "New dashboard", className="h4"),
            dbc.Row(
                [
                    dbc.Col(dbc.Input(id="dashboard-name", value=name, placeholder="dashboard name"), md=6),
                    dbc.Col(dbc.Switch(id="dashboard-public", label="Public", value=public), md=2),
                    dbc.Col(dbc.Button("Save", id="dashboard-save", color="primary"), md=2),
                ],
                className="g-2 mb-3 align-items-center",
            ),
            html.Div(id="dashboard-save-result"),
            form,
            dcc.Store(id="builder", data={"id": dashboard_id, "widgets": items}),
            dbc.Row(id="builder-canvas"),
        ]
    )


def _tools(wid: str) -> Any:
    def button(label: str, action: str, title: str) -> Any:
        return dbc.Button(
            label,
            id={"type": "w-act", "action": action, "wid": wid},
            size="sm",
            color="link",
            className="px-1 py-0",
            title=title,
        )

    return html.Span(
        [
            button("◀", "left", "move left"),
            button("▶", "right", "move right"),
            button("-", "narrower", "narrower"),
            button("+", "wider", "wider"),
            button("▲", "shorter", "shorter"),
            button("▼", "taller", "taller"),
            button("✕", "remove", "remove"),
        ]
    )


def apply_action(items: list[dict[str, Any]], wid: str, action: str) -> list[dict[str, Any]]:
    """The widget list after one builder action on widget ``wid``."""
    items = [dict(w) for w in items]
    index = next((i for i, w in enumerate(items) if w["id"] == wid), None)
    if index is None:
        return items
    widget = items[index]
    if action == "remove":
        del items[index]
    elif action == "left" and index > 0:
        items[index - 1], items[index] = items[index], items[index - 1]
    elif action == "right" and index < len(items) - 1:
        items[index + 1], items[index] = items[index], items[index + 1]
    elif action == "wider":
        widget["w"] = min(12, widget["w"] + 1)
    elif action == "narrower":
        widget["w"] = max(2, widget["w"] - 1)
    elif action == "taller":
        widget["h"] = min(900, widget["h"] + 60)
    elif action == "shorter":
        widget["h"] = max(140, widget["h"] - 60)
    return items


def register(ui: dash.Dash) -> None:
    """Callbacks of the dashboards pages."""

    @ui.callback(Output("widget-keys", "options"), Input("widget-device", "value"))
    def keys(device_id: str | None) -> list[str]:
        require_user("dashboards:read")
        return queries.device_keys(current_platform().engine, device_id) if device_id else []

    @ui.callback(
        Output("builder", "data", allow_duplicate=True),
        Input("widget-add", "n_clicks"),
        State("widget-type", "value"),
        State("widget-device", "value"),
        State("widget-keys", "value"),
        State("widget-agg", "value"),
        State("widget-window", "value"),
        State("widget-title", "value"),
        State("builder", "data"),
        prevent_initial_call=True,
    )
    def add(
        _: int,
        kind: str,
        device: str | None,
        keys: list[str] | None,
        agg: str,
        window: str,
        title: str | None,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        require_user("dashboards:write")
        widget = {
            "id": uuid.uuid4().hex[:10],
            "type": kind,
            "device_id": device,
            "keys": keys or [],
            "aggregation": agg,
            "window": window,
            "title": title or "",
            "w": 6,
            "h": 260,
        }
        return {**state, "widgets": [*state["widgets"], widget]}

    @ui.callback(
        Output("builder", "data", allow_duplicate=True),
        Input({"type": "w-act", "action": ALL, "wid": ALL}, "n_clicks"),
        State("builder", "data"),
        prevent_initial_call=True,
    )
    def act(clicks: list[int | None], state: dict[str, Any]) -> dict[str, Any]:
        if not ctx.triggered_id or not any(clicks) or not ctx.triggered[0]["value"]:
            raise dash.exceptions.PreventUpdate
        require_user("dashboards:write")
        target = ctx.triggered_id
        return {**state, "widgets": apply_action(state["widgets"], target["wid"], target["action"])}

    @ui.callback(Output("builder-canvas", "children"), Input("builder", "data"))
    def canvas(state: dict[str, Any]) -> list[Any]:
        require_user("dashboards:read")
        engine = current_platform().engine
        return [widgets.card(engine, w, _tools(w["id"])) for w in state["widgets"]]

    @ui.callback(
        Output("url", "href"),
        Output("dashboard-save-result", "children"),
        Input("dashboard-save", "n_clicks"),
        State("dashboard-name", "value"),
        State("dashboard-public", "value"),
        State("builder", "data"),
        prevent_initial_call=True,
    )
    def save(_: int, name: str | None, public: bool, state: dict[str, Any]) -> tuple[Any, Any]:
        user = current_user()
        if user is None:
            raise dash.exceptions.PreventUpdate
        if not name:
            return dash.no_update, dbc.Alert("Name the dashboard.", color="danger")
        stored, layout = dashboards_db.split(state["widgets"])
        try:
            saved = dashboards_db.save(
                current_platform().engine, user, state.get("id"), name, bool(public), stored, layout
            )
        except PermissionError as error:
            return dash.no_update, dbc.Alert(str(error), color="danger")
        return f"/ui/dashboards/{saved}", dash.no_update

    @ui.callback(
        Output({"type": "wbody", "wid": ALL}, "children"),
        Input("dashboard-tick", "n_intervals"),
        State("dashboard-id", "data"),
        prevent_initial_call=True,
    )
    def refresh(_: int, dashboard_id: str) -> list[Any]:
        user = require_user("dashboards:read")
        engine = current_platform().engine
        dashboard = dashboards_db.load(engine, user, dashboard_id)
        if dashboard is None:
            raise dash.exceptions.PreventUpdate
        by_id = {w["id"]: w for w in dashboards_db.ordered(dashboard)}
        return [
            widgets.body(engine, by_id[o["id"]["wid"]]) if o["id"]["wid"] in by_id else ""
            for o in ctx.outputs_list
        ]
