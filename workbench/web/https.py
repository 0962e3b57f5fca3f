"""Behind a reverse proxy: trust X-Forwarded-* (ProxyFix); on HTTPS send HSTS and mark cookies Secure."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from workbench.settings import Settings


def init_https(app: Flask, settings: Settings) -> None:
    """Trust ``TRUSTED_PROXIES`` hops of forwarded headers; mark HTTPS responses (HSTS, Secure cookies)."""
    hops = settings.trusted_proxies
    if hops > 0:
        # Only the last `hops` values are believed: those the proxies themselves appended.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
    max_age = settings.hsts_max_age

    @app.after_request
    def mark_https(response: Response) -> Response:
        if not request.is_secure:
            return response
        if max_age > 0:
            response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}; includeSubDomains")
        cookies = response.headers.getlist("Set-Cookie")
        if any("secure" not in _flags(cookie) for cookie in cookies):
            response.headers.remove("Set-Cookie")
            for cookie in cookies:
                response.headers.add(
                    "Set-Cookie", cookie if "secure" in _flags(cookie) else f"{cookie}; Secure"
                )
        return response


def _flags(cookie: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in cookie.split(";")[1:]}
