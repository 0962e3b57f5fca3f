"""What guards API requests: per-key rate limits, the login throttle, CORS, security headers, body size."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, request
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy.exc import DataError

from workbench.api.errors import API_PREFIX, ApiError, error_response
from workbench.auth.guard import resolve_principal
from workbench.auth.principal import Principal
from workbench.settings import Settings

# JSON bodies of the resource endpoints stay small; bulk import routes may raise it per request.
MAX_JSON_BODY = 1024 * 1024
DEFAULT_KEY_RATE = 1000

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
# Failed logins per client address and e-mail, API and sign-in form together; successful logins do not count.
LOGIN_THROTTLE = "5 per 15 minutes"


def login_throttle_key() -> str:
    """Failed logins count per client address and e-mail, so one attacker cannot lock everyone out."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else request.form.get("email")
    return f"login:{get_remote_address()}:{str(email or '').strip().lower()[:255]}"


def throttle_failed_logins(app: Flask, endpoints: list[str]) -> None:
    """Throttle failed logins on ``endpoints`` (registered views): one count per address and e-mail."""
    limiter: Limiter = app.extensions[LIMITER]
    for endpoint in endpoints:
        throttle = limiter.shared_limit(
            LOGIN_THROTTLE,
            scope="login",
            key_func=login_throttle_key,
            deduct_when=lambda response: response.status_code == 401,
        )
        view: Any = app.view_functions[endpoint]
        app.view_functions[endpoint] = throttle(view)


def limit_body(blueprint: Blueprint, max_bytes: int = MAX_JSON_BODY) -> Blueprint:
    """Refuse bodies above ``max_bytes`` on the blueprint's routes with 413 (the app-wide cap is larger)."""

    def _limit() -> None:
        request.max_content_length = max_bytes

    blueprint.before_request(_limit)
    return blueprint


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
