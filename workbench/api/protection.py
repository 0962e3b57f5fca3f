"""What guards API requests: per-key rate limits, the login throttle, CORS, security headers, body size."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItemPerHour
from sqlalchemy.exc import DataError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

from workbench.api.errors import API_PREFIX, ApiError, error_response, own_retry_after
from workbench.auth.guard import resolve_principal
from workbench.auth.principal import Principal
from workbench.settings import Settings

# JSON bodies of the resource endpoints stay small; bulk import routes may raise it per request.
MAX_JSON_BODY = 1024 * 1024
DEFAULT_KEY_RATE = 1000
# Anyone reaches the login routes: their bodies are a few short fields (a refresh token is under 4 KB).
AUTH_MAX_BODY = 8 * 1024
AUTH_BLUEPRINTS = ("auth",)
AUTH_ENDPOINTS = ("ui_login.login_submit",)
POINTS_SCOPE = "api-key-points"

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
# The API answers JSON only; the interactive docs page loads Swagger UI from its CDN.
API_CSP = "default-src 'none'; frame-ancestors 'none'"


def _device_principal() -> Principal | None:
    if not request.path.startswith(API_PREFIX) or "X-API-Key" not in request.headers:
        return None
    try:
        principal = resolve_principal()
    except ApiError:
        return None  # the route's guard answers 401 with the reason
    return principal if principal is not None and principal.is_device else None


def _key_rate() -> str:
    principal = _device_principal()
    rate = principal.rate_limit if principal and principal.rate_limit else DEFAULT_KEY_RATE
    return f"{rate}/hour"


def _key_id() -> str:
    principal = _device_principal()
    return f"api-key:{principal.key_id}" if principal else "anonymous"


LIMITER = "workbench.limiter"
# Failed logins (API and sign-in form together; successful logins do not count), in three counts:
# per address and e-mail (one guesser), per e-mail from anywhere (guessers spread over addresses),
# per address over any e-mail (password spraying). Addresses are the client's, through ProxyFix.
LOGIN_THROTTLES = {
    "login": ("5 per 15 minutes", lambda: f"login:{get_remote_address()}:{_login_email()}"),
    "login-account": ("10 per 15 minutes", lambda: f"login-account:{_login_email()}"),
    "login-address": ("20 per 15 minutes", lambda: f"login-address:{get_remote_address()}"),
}


def _login_email() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else request.form.get("email")
    return str(email or "").strip().lower()[:255]


def throttle_failed_logins(app: Flask, endpoints: list[str]) -> None:
    """Throttle failed logins on ``endpoints`` (registered views), counted by :data:`LOGIN_THROTTLES`."""
    limiter: Limiter = app.extensions[LIMITER]
    for endpoint in endpoints:
        view: Any = app.view_functions[endpoint]
        for scope, (limit, key) in LOGIN_THROTTLES.items():
            throttle = limiter.shared_limit(
                limit, scope=scope, key_func=key, deduct_when=lambda response: response.status_code == 401
            )
            view = throttle(view)
        app.view_functions[endpoint] = view


def trust_proxies(app: Flask, count: int) -> None:
    """Believe ``X-Forwarded-For/-Proto/-Host/-Port`` from ``count`` reverse proxies (0: none)."""
    if count > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count
        )


def limit_body(blueprint: Blueprint, max_bytes: int = MAX_JSON_BODY) -> Blueprint:
    """413 for bodies above ``max_bytes`` on the blueprint's routes (a smaller limit set earlier stays)."""

    def _limit() -> None:
        current = request.max_content_length
        request.max_content_length = max_bytes if current is None else min(current, max_bytes)

    blueprint.before_request(_limit)
    return blueprint


def bounded_body(cache: bool = True) -> bytes:
    """The request body; 413 when it reaches the route's limit, also when sent chunked.

    Werkzeug refuses a declared Content-Length above ``request.max_content_length`` before reading
    anything, but reads a chunked body only up to the limit and returns that part, which would then be
    parsed truncated.
    """
    data = request.get_data(cache=cache)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def _limit_auth_bodies() -> None:
    # Before any hook reads the body (the login throttle reads the e-mail from it), so nothing big is read.
    if request.blueprint in AUTH_BLUEPRINTS or request.endpoint in AUTH_ENDPOINTS:
        request.max_content_length = AUTH_MAX_BODY
        if request.method in ("POST", "PUT", "PATCH"):
            bounded_body()  # cached: the form and JSON parsers read it from there


def charge_points(principal: Principal, points: int, per_unit: int) -> None:
    """Count ``points`` against a device key's hourly points budget (its ``rate_limit`` x ``per_unit``).

    429 with Retry-After once the budget is spent; 413 when one request holds more than the whole budget.
    Users (tokens) have no points budget.
    """
    if not principal.is_device or points <= 0:
        return
    budget = (principal.rate_limit or DEFAULT_KEY_RATE) * per_unit
    if points > budget:
        raise ApiError(
            413,
            "request_entity_too_large",
            f"{points} points in one request exceed this key's budget of {budget} points an hour",
            {"points": points, "budget": budget},
        )
    strategy = current_app.extensions[LIMITER].limiter
    item = RateLimitItemPerHour(budget)
    identity = ("workbench", POINTS_SCOPE, f"api-key:{principal.key_id}")
    if strategy.hit(item, *identity, cost=points):
        return
    reset = strategy.get_window_stats(item, *identity).reset_time
    raise ApiError(
        429,
        "too_many_requests",
        f"this key's budget of {budget} points an hour is spent; nothing was stored",
        {"points": points, "budget": budget},
        headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
    )


def init_protection(app: Flask, settings: Settings) -> None:
    """Attach rate limits (Redis when configured), CORS, security headers and the API body limit."""
    # One limiter per app: Flask-Limiter keeps its storage on the instance, so a shared one would
    # follow whichever app was built last (and its Redis).
    limiter = Limiter(
        get_remote_address,
        application_limits=[
            # Each API key has its own hourly budget across every route (api_keys.rate_limit).
            ApplicationLimit(
                _key_rate,
                key_function=_key_id,
                scope="api-key",
                exempt_when=lambda: _device_principal() is None,
            )
        ],
        headers_enabled=True,
        strategy="moving-window",
        storage_uri=settings.redis_url or "memory://",
        key_prefix="workbench",
    )
    # Registered before the limiter's hook so it runs after it: the limiter sets Retry-After to its hourly
    # window's reset on every response of a device key, which would tell a device to wait an hour after a 503.
    app.after_request(own_retry_after)
    app.before_request(_limit_auth_bodies)  # before the limiter's hooks, which may read a login body
    _retry_after_only_when_refused(app)  # before init_app: its hook then runs after the limiter's
    limiter.init_app(app)
    app.extensions[LIMITER] = limiter
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]
    if origins:
        CORS(
            app,
            resources={f"{API_PREFIX}/*": {"origins": origins}},
            allow_headers=["Authorization", "Content-Type", "X-API-Key"],
            expose_headers=["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"],
            max_age=600,
        )

    @app.errorhandler(DataError)
    def _bad_data(error: DataError) -> Response:
        # Values the schemas let through but PostgreSQL refuses (NUL bytes, out-of-range numbers).
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "invalid value"
        return error_response(400, "bad_request", f"the database refused a value: {reason}")

    @app.after_request
    def _secure(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path.startswith(API_PREFIX) and not request.path.startswith(f"{API_PREFIX}/docs"):
            response.headers.setdefault("Content-Security-Policy", API_CSP)
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _retry_after_only_when_refused(app: Flask) -> None:
    """Keep ``Retry-After`` (which the limiter adds to every keyed response) on 429 and 503 only."""

    @app.after_request
    def _strip(response: Response) -> Response:
        if response.status_code not in (429, 503):
            response.headers.pop("Retry-After", None)
        return response
