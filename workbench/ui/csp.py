"""The Content-Security-Policy of the UI's pages: scripts only from this server or inline ones we hash."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

from flask import Flask, Response, request

UI_PATHS = ("/ui/", "/login", "/logout")


def script_hash(script: str) -> str:
    """The CSP source (``'sha256-...'``) allowing exactly this inline script."""
    digest = hashlib.sha256(script.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def inline_scripts(html: str) -> list[str]:
    """The bodies of the inline ``<script>`` elements of a page we serve (for their hashes)."""
    return [body for body in re.findall(r"<script>(.*?)</script>", html, re.S) if body]


def policy(script_hashes: Iterable[str]) -> str:
    """The UI's policy: no foreign or unhashed scripts, no framing by other sites, no plugins."""
    # Styles stay 'unsafe-inline': plotly.js and Dash components insert <style> elements and style
    # attributes at run time; styles cannot run code.
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *sorted(set(script_hashes))]),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "worker-src": "'self' blob:",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'self'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def init_csp(app: Flask, script_hashes: Iterable[str]) -> None:
    """Send the policy with every UI page and the sign-in form."""
    header = policy(script_hashes)

    @app.after_request
    def _ui_csp(response: Response) -> Response:
        if request.path.startswith(UI_PATHS):
            response.headers.setdefault("Content-Security-Policy", header)
        return response
