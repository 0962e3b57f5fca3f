"""Users (admins): list, create or invite, change role, disable and enable, reset password, remove."""

from __future__ import annotations

import uuid
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench.auth import users
from workbench.errors import ApiError
from workbench.platform import current_platform
from workbench.ui import timefmt
from workbench.ui.acting import actor, refused, secret
from workbench.ui.session import UiUser

PATH = "users"
PERMISSION = users.MANAGE  # the API permission behind this page
COLUMNS = [
    {"field": "email", "minWidth": 220, "flex": 1},
    {"field": "role", "width": 120},
    {"field": "status", "width": 110},
    {"field": "created_at", "headerName": "Created", "minWidth": 170},
    {"field": "last_login", "headerName": "Last login", "minWidth": 170},
]
LISTED = 500


def user_rows() -> list[dict[str, Any]]:
    """The users for the grid, newest first."""
    rows, _ = users.list_users(current_platform().engine, actor(), page_size=LISTED)
    return [
        {
            "id": str(row["id"]),
            "email": row["email"],
            "role": row["role"],
            "status": "disabled" if row["disabled"] else "active",
            "created_at": timefmt.show(row["created_at"]),
            "last_login": timefmt.show(row["last_login"]),
        }
        for row in rows
    ]


def _create_form() -> Any:
    return dbc.Card(
        dbc.CardBody(
            [
                html.H2("Add a user", className="h6"),
                dbc.Row(
                    [
                        dbc.Col(
                            dbc.Input(
                                id="user-email", type="email", placeholder="e-mail", autoComplete="off"
                            ),
                            md=4,
                        ),
                        dbc.Col(dcc.Dropdown(users.ROLES, "viewer", id="user-role", clearable=False), md=2),
                        dbc.Col(
                            dbc.Input(
                                id="user-password",
                                type="password",
                                placeholder="password (empty: generate one)",
                                autoComplete="new-password",
                            ),
                            md=4,
                        ),
                        dbc.Col(
                            dbc.Button("Add user", id="user-create", color="primary", className="w-100"), md=2
                        ),
                    ],
                    className="g-2",
                ),
                html.Div(id="user-create-result", className="mt-2"),
            ]
        ),
        className="mb-3",
    )


def _tools() -> Any:
    return html.Div(
        [
            html.Div(
                dcc.Dropdown(users.ROLES, None, id="user-new-role", placeholder="new role"),
                style={"minWidth": "10rem"},
                className="me-2",
            ),
            dbc.Button("Change role", id="user-set-role", color="primary", outline=True, className="me-2"),
            dbc.Button("Disable", id="user-disable", color="warning", className="me-2"),
            dbc.Button("Enable", id="user-enable", color="success", className="me-2"),
            dbc.Button("Reset password", id="user-reset", color="secondary", outline=True, className="me-2"),
            dcc.ConfirmDialogProvider(
                dbc.Button("Delete", id="user-delete-button", color="danger", outline=True),
                id="user-delete",
                message="Delete the selected user? Their dashboards stay, without an owner.",
            ),
        ],
        className="d-flex flex-wrap align-items-center gap-1 my-2",
        id="user-tools",
    )


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The users page."""
    grid = dag.AgGrid(
        id="users-grid",
        columnDefs=timefmt.zoned(COLUMNS, "created_at", "last_login"),
        rowData=user_rows(),
        getRowId="params.data.id",
        defaultColDef={"sortable": True, "resizable": True, "filter": True},
        dashGridOptions={
            "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
        },
        style={"height": "360px"},
        className="ag-theme-quartz",
    )
    hint = html.P(
        "Select a user, then act on them. Changing a role, disabling or a new password ends that user's "
        "sessions and tokens at once. The last active admin cannot be demoted, disabled or removed.",
        className="small text-body-secondary",
    )
    content = [
        html.H1("Users", className="h4"),
        _create_form(),
        hint,
        grid,
        _tools(),
        html.Div(id="user-result"),
    ]
    return html.Div(content), []


def _act(which: str, user_id: uuid.UUID, role: str | None) -> Any:
    """Run the chosen action on ``user_id`` through the user service; what to show."""
    engine, who = current_platform().engine, actor()
    if which == "user-set-role":
        if not role:
            return dbc.Alert("Choose the new role first.", color="warning", id="user-failed")
        row = users.change_user(engine, who, user_id, role=role)
        return f"{row['email']} is now {row['role']}."
    if which in ("user-disable", "user-enable"):
        row = users.change_user(engine, who, user_id, disabled=which == "user-disable")
        return f"{row['email']} is {'disabled' if row['disabled'] else 'enabled'}."
    if which == "user-reset":
        row, password = users.reset_password(engine, who, user_id)
        return secret(f"New password of {row['email']}", password, "user-new-password")
    users.remove_user(engine, who, user_id)
    return "User deleted."


def register(ui: dash.Dash) -> None:
    """Callbacks of the users page."""

    @ui.callback(
        Output("user-create-result", "children"),
        Output("users-grid", "rowData", allow_duplicate=True),
        Output("user-email", "value"),
        Output("user-password", "value"),
        Input("user-create", "n_clicks"),
        State("user-email", "value"),
        State("user-role", "value"),
        State("user-password", "value"),
        prevent_initial_call=True,
    )
    def create(_: int, email: str | None, role: str | None, password: str | None) -> Any:
        try:
            row, made = users.add_user(current_platform().engine, actor(), email or "", role or "", password)
        except ApiError as error:
            return refused(error, "user-failed"), dash.no_update, dash.no_update, dash.no_update
        done: Any = dbc.Alert(f"Added {row['email']} as {row['role']}.", color="success", id="user-created")
        if made:
            done = html.Div([done, secret(f"Password of {row['email']}", made, "user-new-password")])
        return done, user_rows(), "", ""

    @ui.callback(
        Output("user-result", "children"),
        Output("users-grid", "rowData"),
        Input("user-set-role", "n_clicks"),
        Input("user-disable", "n_clicks"),
        Input("user-enable", "n_clicks"),
        Input("user-reset", "n_clicks"),
        Input("user-delete", "submit_n_clicks"),
        State("users-grid", "selectedRows"),
        State("user-new-role", "value"),
        prevent_initial_call=True,
    )
    def act(*values: Any) -> Any:
        selected, role = values[-2], values[-1]
        if not selected:
            return dbc.Alert("Select a user first.", color="warning", id="user-failed"), dash.no_update
        try:
            shown = _act(str(dash.ctx.triggered_id), uuid.UUID(selected[0]["id"]), role)
        except (ApiError, ValueError) as error:
            failure = error if isinstance(error, ApiError) else ApiError(400, "bad_request", str(error))
            return refused(failure, "user-failed"), dash.no_update
        if isinstance(shown, str):
            shown = dbc.Alert(shown, color="success", id="user-done")
        return shown, user_rows()
