"""Behind a reverse proxy: trust X-Forwarded-* (ProxyFix); on HTTPS send HSTS and mark cookies Secure."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from workbench.settings import Settings

StartResponse = Callable[..., Any]


class HttpsHeaders:
    """WSGI middleware: on HTTPS requests, add HSTS and the Secure flag to every cookie set."""

    def __init__(self, app: Callable[..., Iterable[bytes]], hsts_max_age: int) -> None:
        self.app = app
        self.hsts = f"max-age={hsts_max_age}; includeSubDomains" if hsts_max_age > 0 else None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request, rewriting the response headers of HTTPS requests."""
        if environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def secure_start(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
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
    """Trust ``TRUSTED_PROXIES`` hops of forwarded headers; mark HTTPS responses (HSTS, Secure cookies)."""
    wrapped: Any = HttpsHeaders(app.wsgi_app, settings.hsts_max_age)
    hops = settings.trusted_proxies
    if hops > 0:
        # Only the last `hops` values are believed: those the proxies themselves appended. ProxyFix runs
        # first, so the scheme the proxy saw decides what HttpsHeaders does.
        wrapped = ProxyFix(wrapped, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)
    app.wsgi_app = wrapped  # type: ignore[method-assign]


def _flags(cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
