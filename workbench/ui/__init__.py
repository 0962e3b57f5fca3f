"""The Dash UI, hosted in the Flask app under ``/ui/`` behind the same login and roles as the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import dash
from dash import ClientsideFunction, Input, Output, State, dcc
from flask import Flask, g

from workbench.platform import current_platform
from workbench.ui import shell, timefmt
from workbench.ui.login import UI_PREFIX, init_login
from workbench.ui.pages import alerts, dashboards, device, overview, reports, rules
from workbench.ui.session import Forbidden, current_user, require_user

ASSETS = Path(__file__).resolve().parent / "assets"
PAGES = (overview, device, dashboards, alerts, rules, reports)


def init_ui(app: Flask) -> dash.Dash:
    """Mount the login page and the Dash app on ``app``."""
    init_login(app)
    ui = dash.Dash(
        "workbench.ui",
        server=cast(Any, app),
        url_base_pathname=UI_PREFIX,
        assets_folder=str(ASSETS),
        serve_locally=True,
        suppress_callback_exceptions=True,
        title="IIoT Workbench",
        update_title=cast(Any, None),  # no "Updating..." tab title
    )
    # A callback a role may not run answers as the API does (403), not with a server error.
    app.register_error_handler(Forbidden, lambda error: ({"error": str(error)}, 403))
    ui.index_string = shell.INDEX  # lang="en" for screen readers
    ui.layout = shell.layout
    _register_shell(ui)
    for page in PAGES:
        page.register(ui)
    return ui


def route(pathname: str | None) -> tuple[Any, list[dict[str, Any]]]:
    """The content and live subscriptions of the page at ``pathname``."""
    user = current_user()
    if user is None:
        return shell.forbidden("Sign in first."), []
    path = (pathname or UI_PREFIX).rstrip("/") + "/"
    parts = [p for p in path[len(UI_PREFIX) :].split("/") if p]
    head, rest = (parts[0], parts[1:]) if parts else ("", [])
    for page in PAGES:
        if head == page.PATH:
            if not user.may(page.PERMISSION):
                # As the API answers 403: the page is not shown, not shown empty.
                return shell.forbidden(f"Your role ({user.role}) may not open this page."), []
            result: tuple[Any, list[dict[str, Any]]] = page.page(user, *rest)
            return result
    return shell.not_found(pathname or ""), []


def _register_shell(ui: dash.Dash) -> None:
    @ui.callback(Output("page", "children"), Input("url", "pathname"), Input("url", "search"))
    def render(pathname: str | None, search: str | None) -> Any:
        g.wb_search = search  # a page's view state in its URL (a dashboard's time range)
        content, subs = route(pathname)
        return [content, dcc.Store(id="live-subs", data=subs)]

    @ui.callback(Output("zone-saved", "data"), Input("zone-choice", "value"), prevent_initial_call=True)
    def choose_zone(name: str | None) -> str:
        user = require_user()
        if not name:
            raise dash.exceptions.PreventUpdate
        chosen = None if name in (None, "", shell.BROWSER) else name
        timefmt.set_profile_zone(current_platform().engine, user.user_id, chosen)
        return name

    # Every time on the page is redrawn in the new zone: reload it once the profile holds the choice.
    ui.clientside_callback(
        "function(saved) { var shown = document.getElementById('wb-zone');"
        " if (saved && shown && shown.getAttribute('data-choice') !== saved) { window.location.reload(); }"
        " return ''; }",
        Output("zone-sink", "children"),
        Input("zone-saved", "data"),
        prevent_initial_call=True,
    )

    ui.clientside_callback(
        ClientsideFunction(namespace="wb", function_name="subscribe"),
        Output("live-sink", "children"),
        Input("live-subs", "data"),
    )
    ui.clientside_callback(
        ClientsideFunction(namespace="wb", function_name="theme"),
        Output("theme-sink", "children"),
        Input("theme-dark", "value"),
    )
    # Each page names itself in the tab's title; the phone menu closes once a link was followed.
    ui.clientside_callback(
        "function(path) { var part = ((path || '').split('/')[2] || '');"
        f" var names = {json.dumps(shell.TITLES)};"
        " document.title = (names[part] || 'Not found') + ' · IIoT Workbench'; return document.title; }",
        Output("title-sink", "children"),
        Input("url", "pathname"),
    )
    ui.clientside_callback(
        "function(path) { return false; }",
        Output("nav-collapse", "is_open", allow_duplicate=True),
        Input("url", "pathname"),
        prevent_initial_call=True,
    )
    ui.clientside_callback(
        "function(n, open) { return n ? !open : open; }",
        Output("nav-collapse", "is_open"),
        Input("nav-toggle", "n_clicks"),
        State("nav-collapse", "is_open"),
    )
