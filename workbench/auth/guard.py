"""Flask side of auth: who is calling (JWT, API key, UI session) and the ``require``/``public`` decorators.

The one place a request's user is loaded: tokens and the UI session name a user and an epoch, and the
user row decides (exists, enabled, same epoch, its current role). See :mod:`workbench.auth.access`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from flask import current_app, g, request, session

from workbench.auth import access, api_keys, service_tokens, tokens
from workbench.auth.permissions import allowed
from workbench.auth.principal import Principal
from workbench.errors import ApiError
from workbench.platform import current_platform

F = TypeVar("F", bound=Callable[..., Any])

# view function qualified name -> permission (or None for public); the route-walk test reads this.
ROUTE_PERMISSIONS: dict[str, str | None] = {}

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"apiKey": []}]


def _remember(func: Callable[..., Any], permission: str | None) -> None:
    ROUTE_PERMISSIONS[f"{func.__module__}.{func.__qualname__}"] = permission


def permission_of(view: Callable[..., Any]) -> tuple[bool, str | None]:
    """(declared, permission) for a view function, following decorator wrappers."""
    current: Any = view
    while current is not None:
        name = f"{current.__module__}.{current.__qualname__}"
        if name in ROUTE_PERMISSIONS:
            return True, ROUTE_PERMISSIONS[name]
        current = getattr(current, "__wrapped__", None)
    return False, None


def resolve_principal() -> Principal | None:
    """Authenticate the request: Bearer JWT, then X-API-Key, then the UI session; None if anonymous."""
    if "principal" in g:
        cached: Principal | None = g.principal
        return cached
    principal = _from_bearer() or _from_api_key() or _from_session()
    g.principal = principal
    return principal


def _from_bearer() -> Principal | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "Authorization header must be 'Bearer <token>'")
    if service_tokens.is_service_token(token.strip()):
        service = service_principal(token.strip())
        if service is None:
            raise ApiError(401, "unauthorized", "service token revoked, expired or unknown")
        return service
    try:
        claims = tokens.decode(current_app.config["SECRET_KEY"], token.strip())
    except tokens.TokenError as error:
        raise ApiError(401, "unauthorized", str(error)) from None
    principal = token_principal(claims)
    if principal is None:
        raise ApiError(401, "unauthorized", "token revoked, or its user was changed, disabled or removed")
    return principal


def token_principal(claims: dict[str, Any]) -> Principal | None:
    """The user behind decoded token ``claims`` while their access holds (the database decides the role)."""
    user = access.token_user(current_platform().engine, claims)
    if user is None:
        return None
    return Principal(kind="user", id=user.id, role=user.role, email=user.email, claims=claims)


def service_principal(raw: str) -> Principal | None:
    """The caller behind a service token while it is neither revoked nor expired."""
    token = service_tokens.authenticate(current_platform().engine, raw)
    if token is None:
        return None
    return Principal(kind="service", id=token.id, role="service", claims={"scopes": token.scopes})


def _from_api_key() -> Principal | None:
    raw = request.headers.get("X-API-Key")
    if raw is None:
        return None
    key = api_keys.authenticate(current_platform().engine, raw.strip())
    if key is None:
        raise ApiError(401, "unauthorized", "invalid, revoked or expired API key")
    return Principal(
        kind="device",
        id=key.id,
        role="device",
        device_id=key.device_id,
        key_id=key.id,
        rate_limit=key.rate_limit,
        claims={"permissions": key.permissions},
    )


def _from_session() -> Principal | None:
    # The UI's cookie session authenticates only safe methods: API writes need a token or key (no CSRF).
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        return None
    return session_principal()


SESSION_KEY = "sid"


def session_principal() -> Principal | None:
    """The UI session's user while the session holds (epoch, enabled, idle and absolute timeouts)."""
    if "session_principal" in g:
        cached: Principal | None = g.session_principal
        return cached
    principal = None
    raw = session.get(SESSION_KEY)
    if raw is not None:
        settings = current_platform().settings
        user = access.session_user(
            current_platform().engine,
            raw,
            idle=timedelta(seconds=settings.session_idle_timeout_s),
            absolute=timedelta(seconds=settings.session_absolute_timeout_s),
        )
        if user is None:
            session.clear()  # ended on the server: the browser's copy goes too
        else:
            claims = {"ver": user.token_version}
            principal = Principal(kind="user", id=user.id, role=user.role, email=user.email, claims=claims)
    g.session_principal = principal
    return principal


def start_session(user: access.ActiveUser) -> None:
    """Sign ``user`` in to the UI: a new server-side session, its random id in a fresh cookie."""
    engine, settings = current_platform().engine, current_platform().settings
    # Sessions nobody signed out of would stay forever: each sign-in sweeps the timed-out ones.
    access.purge_sessions(
        engine,
        idle=timedelta(seconds=settings.session_idle_timeout_s),
        absolute=timedelta(seconds=settings.session_absolute_timeout_s),
    )
    session.clear()
    session[SESSION_KEY] = access.start_session(engine, user)
    session.permanent = True
    g.pop("session_principal", None)


def end_session() -> None:
    """Sign the UI session out on the server, so a copy of the cookie is worthless too."""
    raw = session.get(SESSION_KEY)
    if isinstance(raw, str):
        access.end_session(current_platform().engine, raw)
    session.clear()
    g.pop("session_principal", None)


def require(permission: str) -> Callable[[F], F]:
    """Let the view run only for a caller whose role holds ``permission`` (401 anonymous, 403 otherwise)."""
    allowed("admin", permission)  # fails fast on a typo at import time

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = resolve_principal()
            if principal is None:
                raise ApiError(401, "unauthorized", "authentication required (Bearer token or X-API-Key)")
            principal.check(permission)
            if principal.is_device and not _key_grants(principal, permission):
                raise ApiError(403, "forbidden", f"this API key's permissions exclude {permission}")
            return func(*args, **kwargs)

        _remember(func, permission)
        _remember(wrapper, permission)
        wrapper._apidoc = _with_security(getattr(func, "_apidoc", {}))  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def _key_grants(principal: Principal, permission: str) -> bool:
    # A key's own permissions ({"read": bool, "write": bool}) narrow what its device role allows.
    verb = "write" if permission.endswith((":write", ":replay", ":command", ":ack")) else "read"
    granted = (principal.claims.get("permissions") or {}).get(verb, True)
    return bool(granted)


def public(func: F) -> F:
    """Mark a view as open to anonymous callers (login, refresh, the OpenAPI document)."""
    _remember(func, None)
    return func


def current_principal() -> Principal:
    """The authenticated caller of a ``require``-guarded view."""
    principal = resolve_principal()
    assert principal is not None, "current_principal() outside a guarded view"
    return principal


def _with_security(apidoc: dict[str, Any]) -> dict[str, Any]:
    manual = dict(apidoc.get("manual_doc", {}))
    manual.setdefault("security", SECURITY)
    return {**apidoc, "manual_doc": manual}
