"""The page shell: navigation bar, theme switch, router target and the live-subscription bridge."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import dcc, html

from workbench.ui.session import current_user

NAV = (
    ("Overview", "/ui/"),
    ("Dashboards", "/ui/dashboards"),
    ("Alerts", "/ui/alerts"),
    ("Rules", "/ui/rules"),
    ("Reports", "/ui/reports"),
)


def layout() -> Any:
    """The whole page around the routed content (built per request: it shows the session's user)."""
    user = current_user()
    who = f"{user.email} · {user.role}" if user else ""
    navbar = dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("IIoT Workbench", href="/ui/"),
                dbc.NavbarToggler(id="nav-toggle"),
                dbc.Collapse(
                    [
                        dbc.Nav(
                            [
                                dbc.NavItem(dbc.NavLink(label, href=href, id=f"nav-{label.lower()}"))
                                for label, href in NAV
                            ],
                            navbar=True,
                            className="me-auto",
                        ),
                        dbc.Switch(
                            id="theme-dark",
                            label="Dark",
                            value=False,
                            className="me-3 mb-0",
                            persistence=True,
                            persistence_type="local",
                        ),
                        html.Span(who, id="who", className="navbar-text me-3 small"),
                        dbc.Button(
                            "Sign out",
                            href="/logout",
                            external_link=True,
                            size="sm",
                            color="light",
                            outline=True,
                            id="logout",
                        ),
                    ],
                    id="nav-collapse",
                    navbar=True,
                ),
            ],
            fluid=True,
        ),
        className="mb-3 border-bottom",
    )
    return html.Div(
        [
            dcc.Location(id="url"),
            html.Div(id="theme-sink", hidden=True),
            html.Div(id="live-sink", hidden=True),
            navbar,
            dbc.Container(html.Div(id="page"), fluid=True, className="pb-4"),
        ]
    )


def not_found(path: str) -> Any:
    """The page for an unknown path."""
    return dbc.Alert(f"No page at {path}.", color="warning", id="not-found")


def forbidden(message: str) -> Any:
    """The page for something this role may not see."""
    return dbc.Alert(message, color="danger", id="forbidden")
