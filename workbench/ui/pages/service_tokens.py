"""Service tokens (admins): create one for a machine (name, read scopes, expiry; shown once), list, revoke."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench.auth import service_tokens
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.ui import timefmt
from workbench.ui.acting import actor, refused, secret
from workbench.ui.session import UiUser

PATH = "service-tokens"
PERMISSION = service_tokens.MANAGE  # the API permission behind this page
COLUMNS = [
    {"field": "name", "minWidth": 160, "flex": 1},
    {"field": "prefix", "width": 140},
    {"field": "scopes", "minWidth": 200, "flex": 1},
    {"field": "status", "width": 110},
    {"field": "expires_at", "headerName": "Expires", "minWidth": 170},
    {"field": "last_used", "headerName": "Last used", "minWidth": 170},
    {"field": "created_at", "headerName": "Created", "minWidth": 170},
]
LISTED = 500
MAX_DAYS = service_tokens.MAX_LIFETIME.days - 1


def token_rows() -> list[dict[str, Any]]:
    """Every token, revoked ones too, newest first, with when each was last used."""
    rows, _ = service_tokens.list_tokens(current_platform().engine, actor(), True, page_size=LISTED)
    now = datetime.now(UTC)
    return [
        {
            "id": str(row["id"]),
            "name": row["name"],
            "prefix": row["prefix"] + "…",
            "scopes": ", ".join(row["scopes"]),
            "status": "revoked" if row["revoked_at"] else "expired" if row["expires_at"] <= now else "valid",
            "expires_at": timefmt.show(row["expires_at"]),
            "last_used": timefmt.show(row["last_used"]) if row["last_used"] else "never",
            "created_at": timefmt.show(row["created_at"]),
        }
        for row in rows
    ]


def _form() -> Any:
    days = service_tokens.DEFAULT_LIFETIME.days
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("New token", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(dbc.Input(id="token-name", placeholder="name, e.g. Grafana"), md=3),
                        dbc.Col(
                            dcc.Dropdown(
                                list(service_tokens.SCOPES),
                                ["telemetry:read"],
                                id="token-scopes",
                                multi=True,
                                placeholder="scopes (read permissions)",
                            ),
                            md=5,
                        ),
                        dbc.Col(
                            dbc.InputGroup(
                                [
                                    dbc.Input(
                                        id="token-days",
                                        type="number",
                                        min=1,
                                        max=MAX_DAYS,
                                        step=1,
                                        value=days,
                                    ),
                                    html.Label(
                                        "days to expiry", htmlFor="token-days", className="input-group-text"
                                    ),
                                ]
                            ),
                            md=2,
                        ),
                        dbc.Col(
                            dbc.Button("Create token", id="token-create", color="primary", className="w-100"),
                            md=2,
                        ),
                    ],
                    className="g-2",
                ),
                html.Div(id="token-create-result", className="mt-2"),
            ]
        ),
        className="mb-3",
    )


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The service tokens page."""
    grid = dag.AgGrid(
        id="tokens-grid",
        columnDefs=timefmt.zoned(COLUMNS, "expires_at", "last_used", "created_at"),
        rowData=token_rows(),
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={
            "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
        },
        style={"height": "320px"},
        className="ag-theme-quartz",
    )
    hint = html.P(
        "Machines (Grafana, historians, scripts) send a token as 'Authorization: Bearer <token>' on the REST "
        "API and Socket.IO. Tokens only read, within their scopes; a revoked token is refused at once.",
        className="small text-body-secondary",
    )
    tools = html.Div(
        dbc.Button("Revoke", id="token-revoke", color="danger", outline=True),
        className="my-2",
        id="token-tools",
    )
    content = [
        html.H1("Service tokens", className="h4"),
        _form(),
        hint,
        grid,
        tools,
        html.Div(id="token-result"),
    ]
    return html.Div(content), []


def _expiry(days: Any) -> datetime:
    """Now plus ``days`` (the service checks the bounds)."""
    try:
        return datetime.now(UTC) + timedelta(days=int(days))
    except (TypeError, ValueError, OverflowError):
        raise ApiError(422, "validation_error", "expiry: give a whole number of days") from None


def register(ui: dash.Dash) -> None:
    """Callbacks of the service tokens page."""

    @ui.callback(
        Output("token-create-result", "children"),
        Output("tokens-grid", "rowData"),
        Output("token-name", "value"),
        Input("token-create", "n_clicks"),
        State("token-name", "value"),
        State("token-scopes", "value"),
        State("token-days", "value"),
        prevent_initial_call=True,
    )
    def create(_: int, name: str | None, scopes: list[str] | None, days: Any) -> Any:
        engine = current_platform().engine
        try:
            token, raw = service_tokens.issue(engine, actor(), name or "", list(scopes or []), _expiry(days))
        except ApiError as error:
            return refused(error, "token-failed"), dash.no_update, dash.no_update
        return secret(f"Token {token['name']}", raw, "token-secret"), token_rows(), ""

    @ui.callback(
        Output("token-result", "children"),
        Output("tokens-grid", "rowData", allow_duplicate=True),
        Input("token-revoke", "n_clicks"),
        State("tokens-grid", "selectedRows"),
        prevent_initial_call=True,
    )
    def revoke(_: int, selected: list[dict[str, Any]] | None) -> Any:
        if not selected:
            return dbc.Alert("Select a token first.", color="warning", id="token-failed"), dash.no_update
        try:
            token = service_tokens.withdraw(current_platform().engine, actor(), uuid.UUID(selected[0]["id"]))
        except ApiError as error:
            return refused(error, "token-failed"), dash.no_update
        except ValueError:
            return dbc.Alert("No such token.", color="danger", id="token-failed"), dash.no_update
        done = dbc.Alert(f"Token {token['name']} revoked.", color="success", id="token-done")
        return done, token_rows()
