"""Service calls from callbacks: who acts (the session's principal), a refusal as the API words it."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from workbench.auth.guard import session_principal
from workbench.auth.principal import Principal
from workbench.errors import ApiError
from workbench.ui.session import Forbidden


def actor() -> Principal | None:
    """The UI session's caller, as the services check it (None: nobody; the service answers 401)."""
    return session_principal()


def caller() -> Principal:
    """:func:`actor` for a callback that needs one; Forbidden when nobody is signed in."""
    principal = actor()
    if principal is None:
        raise Forbidden("not logged in")
    return principal


def refused(error: ApiError, ident: str) -> Any:
    """A service's refusal (validation, conflict, permission) as a red alert with its message."""
    return dbc.Alert(error.message, color="danger", id=ident)


def secret(label: str, value: str, ident: str) -> Any:
    """A secret shown this once (a new password, a token), with the warning that it is not shown again."""
    return dbc.Alert(
        [
            html.H2(label, className="alert-heading h6"),
            dbc.Label("Copy it now: it is not shown again.", html_for=ident, className="small d-block"),
            dbc.Input(value=value, id=ident, readonly=True, className="font-monospace"),
        ],
        color="warning",
    )
