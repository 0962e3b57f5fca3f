"""Rules: placeholder until filled in."""

from __future__ import annotations

from typing import Any

import dash
from dash import html

from workbench.ui.session import UiUser

PATH = "rules"


def page(user: UiUser, *parts: str) -> tuple[Any, list[dict[str, Any]]]:
    """The rules page."""
    return html.H1("Rules", className="h4"), []


def register(ui: dash.Dash) -> None:
    """Callbacks of the rules page."""
