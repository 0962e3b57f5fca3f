"""Reports: placeholder until filled in."""

from __future__ import annotations

from typing import Any

import dash
from dash import html

from workbench.ui.session import UiUser

PATH = "reports"


def page(user: UiUser, *parts: str) -> tuple[Any, list[dict[str, Any]]]:
    """The reports page."""
    return html.H1("Reports", className="h4"), []


def register(ui: dash.Dash) -> None:
    """Callbacks of the reports page."""
