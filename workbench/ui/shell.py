"""The page shell: navigation bar, theme switch, router target and the live-subscription bridge."""

from __future__ import annotations

from typing import Any, cast

import dash_bootstrap_components as dbc
from dash import dcc, html

from workbench.platform import current_platform
from workbench.ui import timefmt
from workbench.ui.session import UiUser, current_user

NAV = (
    ("Overview", "/ui/", "devices:read"),
    ("Dashboards", "/ui/dashboards", "dashboards:read"),
    ("Alerts", "/ui/alerts", "alerts:read"),
    ("Rules", "/ui/rules", "rules:read"),
    ("Reports", "/ui/reports", "reports:read"),
)
# Administration, one "Admin" menu (the role matrix decides: users and tokens are admins', devices and
# quarantine engineers' too); the menu shows when the role may open at least one of them.
ADMIN = (
    ("Devices", "/ui/devices", "devices:write"),
    ("Users", "/ui/users", "users:manage"),
    ("Quarantine", "/ui/quarantine", "quarantine:read"),
    ("Service tokens", "/ui/service-tokens", "users:manage"),
)


BROWSER = "browser"  # the zone choice that follows the browser's zone


def layout() -> Any:
    """The whole page around the routed content (built per request: it shows the session's user)."""
    user = current_user()
    who = f"{user.email} · {user.role}" if user else ""
    zone = timefmt.label()
    navbar = dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("IIoT Workbench", href="/ui/"),
                dbc.NavbarToggler(id="nav-toggle"),
                dbc.Collapse(
                    [
                        dbc.Nav(_links(user), navbar=True, className="me-auto"),
                        dbc.Switch(
                            id="theme-dark",
                            label="Dark",
                            value=False,
                            className="me-3 mb-0",
                            persistence=True,
                            persistence_type="local",
                        ),
                        _zone_choice(user.user_id if user else None, zone),
                        html.Span(who, id="who", className="navbar-text me-3 small"),
                        dbc.Button(
                            "Sign out",
                            href="/logout",
                            external_link=True,
                            size="sm",
                            color="secondary",
                            outline=True,
                            className="wb-signout",
                            id="logout",
                        ),
                    ],
                    id="nav-collapse",
                    navbar=True,
                ),
            ],
            fluid=True,
        ),
        color="",
        className="mb-3 border-bottom bg-body-tertiary wb-nav",
    )
    return html.Div(
        [
            html.A(
                "Skip to main content", href="#main", className="visually-hidden-focusable", id="skip-link"
            ),
            dcc.Location(id="url"),
            dcc.Store(id="zone-saved"),
            html.Div(id="zone-sink", hidden=True),
            html.Div(
                id="wb-zone",
                hidden=True,
                **cast(
                    dict[str, Any],
                    {"data-zone": zone, "data-choice": _choice(user.user_id if user else None)},
                ),
            ),
            html.Div(id="theme-sink", hidden=True),
            html.Div(id="title-sink", hidden=True),
            html.Div(id="live-sink", hidden=True),
            navbar,
            html.Main(
                dbc.Container(html.Div(id="page"), fluid=True, className="pb-4"), id="main", tabIndex="-1"
            ),
        ]
    )


def _nav_id(label: str) -> str:
    return f"nav-{label.lower().replace(' ', '-')}"


def _links(user: UiUser | None) -> list[Any]:
    """The navigation entries this user's role may open: the pages, then the Admin menu if any."""
    if user is None:
        return []
    links: list[Any] = [
        dbc.NavItem(dbc.NavLink(label, href=href, id=_nav_id(label)))
        for label, href, permission in NAV
        if user.may(permission)
    ]
    admin = [
        dbc.DropdownMenuItem(label, href=href, id=_nav_id(label))
        for label, href, permission in ADMIN
        if user.may(permission)
    ]
    if admin:
        links.append(dbc.DropdownMenu(admin, label="Admin", nav=True, in_navbar=True, id="nav-admin"))
    return links


def _choice(user_id: str | None) -> str:
    # The profile's zone, or BROWSER to follow the browser's (the cookie wb_live.js writes).
    return (timefmt.profile_zone(current_platform().engine, user_id) if user_id else None) or BROWSER


def _zone_choice(user_id: str | None, zone: str) -> Any:
    chosen = _choice(user_id)
    options = [{"label": "Follow the browser", "value": BROWSER}] + [
        {"label": name, "value": name} for name in timefmt.zones()
    ]
    return html.Div(
        [
            html.Span(f"Times in {zone}", id="zone-label", className="navbar-text small me-2"),
            dcc.Dropdown(
                options,
                chosen,
                id="zone-choice",
                clearable=False,
                className="wb-zone-choice",
                style={"minWidth": "12rem"},
            ),
        ],
        className="d-flex align-items-center me-3",
        title="Time zone of every time shown (your profile)",
    )


# The page as the browser's tab names it (the title follows the path's first part).
TITLES = {"": "Overview", **{href.split("/")[2]: label for label, href, _ in NAV + ADMIN if href != "/ui/"}}
TITLES["device"] = "Device"
INDEX = """<!DOCTYPE html>
<html lang="en">
    <head>
        {%metas%}
        <title>{%title%}</title>
        {%favicon%}
        {%css%}
    </head>
    <body>
        {%app_entry%}
        <footer>
            {%config%}
            {%scripts%}
            {%renderer%}
        </footer>
    </body>
</html>"""


def not_found(path: str) -> Any:
    """The page for an unknown path."""
    return dbc.Alert(f"No page at {path}.", color="warning", id="not-found")


def forbidden(message: str) -> Any:
    """The page for something this role may not see."""
    return dbc.Alert(message, color="danger", id="forbidden")
