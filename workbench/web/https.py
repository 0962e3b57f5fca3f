"""On HTTPS (direct, or through a trusted proxy: ProxyFix in api/protection.py): HSTS and Secure cookies."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask

from workbench.settings import Settings

StartResponse = Callable[..., Any]


class HttpsHeaders:
    """WSGI middleware: on HTTPS requests, add HSTS and the Secure flag to every cookie set."""

    def __init__(self, app: Callable[..., Iterable[bytes]], hsts_max_age: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains" if hsts_max_age > 0 else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request; the headers of an HTTPS one are rewritten as the response starts."""

        def secure_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            # Read now, not before: ProxyFix (inside this layer) sets the scheme the proxy saw in place.
            if environ.get("wsgi.url_scheme") != "https":
                return start_response(status, headers, *args)
            marked = [
                (name, f"{value}; Secure")
                if name.lower() == "set-cookie" and "secure" not in _flags(value)
                else (name, value)
                for name, value in headers
            ]
            if self.hsts and not any(name.lower() == "strict-transport-security" for name, _ in marked):
                marked.append(("Strict-Transport-Security", self.hsts))
            return start_response(status, marked, *args)

        return self.app(environ, secure_start)


def init_https(app: Flask, settings: Settings) -> None:
    """Mark responses to HTTPS requests: HSTS (``HSTS_MAX_AGE``) and the Secure flag on every cookie."""
    app.wsgi_app = HttpsHeaders(app.wsgi_app, settings.hsts_max_age)  # type: ignore[method-assign]


def _flags(cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
