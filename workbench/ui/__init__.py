"""The Dash UI, hosted in the Flask app under ``/ui/`` behind the same login and roles as the API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import dash
from dash import ClientsideFunction, Input, Output, State, dcc
from dash.exceptions import DependencyException
from flask import Flask, Response, g, jsonify, request

from workbench.platform import current_platform
from workbench.ui import shell, timefmt
from workbench.ui.csp import init_csp, inline_scripts, script_hash
from workbench.ui.login import PAGE, UI_PREFIX, init_login
from workbench.ui.pages import (
    alerts,
    dashboards,
    device,
    devices,
    overview,
    quarantine,
    reports,
    rules,
    service_tokens,
    users,
)
from workbench.ui.session import Forbidden, current_user, require_user

ASSETS = Path(__file__).resolve().parent / "assets"
ADMIN_PAGES = (devices, users, quarantine, service_tokens)
PAGES = (overview, device, dashboards, alerts, rules, reports, *ADMIN_PAGES)


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
    app.register_error_handler(Forbidden, lambda error: _json_error(403, "forbidden", str(error)))
    ui.index_string = shell.INDEX  # lang="en" for screen readers
    ui.layout = shell.layout
    _register_shell(ui)
    for page in PAGES:
        page.register(ui)
    _refuse_malformed_dash_requests(app, ui)
    # After every callback is registered: Dash hashes its inline scripts (clientside callbacks, renderer).
    init_csp(app, [*ui.csp_hashes(), *map(script_hash, inline_scripts(PAGE))])
    return ui


def _refuse_malformed_dash_requests(app: Flask, ui: dash.Dash) -> None:
    """Probes of Dash's endpoints get 404/400, never a 500: unknown component paths, foreign callbacks."""
    dispatch = f"{UI_PREFIX}_dash-update-component"

    @app.errorhandler(DependencyException)
    def _no_such_component_file(error: DependencyException) -> Response:
        return _json_error(404, "not_found", "no such component file")

    @app.before_request
    def _callback_shape() -> Response | None:
        if request.path != dispatch or request.method != "POST":
            return None
        body = request.get_json(silent=True)
        lists = ("inputs", "state", "outputs", "changedPropIds")
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("output"), str)
            or body["output"] not in ui.callback_map
            or any(not isinstance(body.get(name, []), list | dict) for name in lists)
        ):
            return _json_error(400, "bad_request", "not a callback of this app")
        return None


def _json_error(status: int, code: str, message: str) -> Response:
    response = jsonify(error={"code": code, "message": message})
    response.status_code = status
    return response


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
