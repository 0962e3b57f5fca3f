"""The login page and the gate in front of the Dash app: same users, roles and session as the API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    has_request_context,
    jsonify,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import update

from workbench.auth.guard import end_session, session_principal, start_session
from workbench.auth.users import FIRST_ADMIN_COMMAND, check_login, has_admin
from workbench.db.tables import users
from workbench.platform import EXTENSION, current_platform
from workbench.ui.sso import LOGOUT_KEY, init_sso, provider_logout_url, providers_of

UI_PREFIX = "/ui/"
blueprint = Blueprint("ui_login", __name__)

PAGE = """<!doctype html>
<html lang="en" data-bs-theme="light"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · IIoT Workbench</title>
<link rel="stylesheet" href="{{ prefix }}assets/bootstrap.min.css">
<script>try{document.documentElement.dataset.bsTheme=
JSON.parse(localStorage.getItem("wb-theme"))||"light"}catch(e){}</script>
</head><body class="bg-body-tertiary">
<main class="container" style="max-width: 24rem; margin-top: 12vh">
<h1 class="h4 mb-3">IIoT Workbench</h1>
{% if error %}<div class="alert alert-danger" role="alert">{{ error }}</div>{% endif %}
{% if first_admin %}<div class="alert alert-info" role="status" id="no-admin">No administrator exists yet.
Create the first one on the server, in the repository:
<code>.venv/bin/{{ first_admin }}</code></div>{% endif %}
{% for provider in providers %}<a class="btn btn-outline-primary w-100 mb-2" id="sso-{{ provider.slug }}"
 href="/login/sso/{{ provider.slug }}?next={{ next | urlencode }}">Sign in with {{ provider.name }}</a>
{% endfor %}
{% if local_login %}{% if providers %}<div class="text-center text-body-secondary my-2">or</div>{% endif %}
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="next" value="{{ next }}">
<div class="mb-3"><label class="form-label" for="email">E-mail</label>
<input class="form-control" id="email" name="email" type="email" autocomplete="username"
 required autofocus></div>
<div class="mb-3"><label class="form-label" for="password">Password</label>
<input class="form-control" id="password" name="password" type="password" autocomplete="current-password"
 required></div>
<button class="btn btn-primary w-100" id="login" type="submit">Sign in</button>
</form>{% endif %}</main></body></html>"""


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie, marked ``Secure`` whenever the request came over HTTPS (ProxyFix tells)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """``Secure`` when configured, or when this request is HTTPS."""
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (has_request_context() and request.is_secure)


def init_login(app: Flask) -> None:
    """Register the login/logout routes and the gate that sends anonymous UI visitors to the login page."""
    settings = app.extensions[EXTENSION].settings
    # Lax keeps the session cookie off cross-site POSTs, so Dash callbacks cannot be forged from elsewhere.
    # (Flask defines the key as None, so this is set, not defaulted.)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    # The cookie holds only a session id; the server ends the session sooner (idle timeout, sign-out).
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(seconds=settings.session_absolute_timeout_s)
    app.session_interface = SessionCookies()
    app.register_blueprint(blueprint)
    app.before_request(_gate)
    init_sso(app)


def _gate() -> Response | None:
    path = request.path
    if not path.startswith(UI_PREFIX) or path.startswith(UI_PREFIX + "assets/"):
        return None
    if session_principal() is not None:
        return None
    if path.startswith(UI_PREFIX + "_dash-"):
        response = jsonify(error={"code": "unauthorized", "message": "log in first"})
        response.status_code = 401
        return response
    return redirect(f"/login?next={request.full_path.rstrip('?')}")  # type: ignore[return-value]


def _safe_next(target: str | None) -> str:
    # Only same-site UI paths: an open redirect after login would be a phishing aid.
    if not target or urlsplit(target).netloc or not target.startswith(UI_PREFIX):
        return UI_PREFIX
    return target


@blueprint.get("/")
def root() -> Response:
    """The site root opens the UI."""
    return redirect(UI_PREFIX)  # type: ignore[return-value]


@blueprint.get("/login")
def login_form() -> str:
    """The sign-in form."""
    return _render(None, _safe_next(request.args.get("next")))


@blueprint.post("/login")
def login_submit() -> Response | tuple[str, int]:
    """Check the password and start a session carrying the user's id, role and e-mail."""
    target = _safe_next(request.form.get("next"))
    if not current_platform().settings.local_login:
        return _render("Sign-in with a password is switched off here.", target), 403
    if not secrets.compare_digest(request.form.get("csrf", ""), session.get("login_csrf", "")):
        return _render("The form expired; try again.", target), 400
    engine = current_platform().engine
    # The same check as the API: an unknown e-mail costs the same password verification as a known one.
    user = check_login(engine, request.form.get("email", ""), request.form.get("password", ""))
    if user is None:
        return _render("Wrong e-mail or password.", target), 401
    start_session(user)
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(last_login=datetime.now(UTC)))
    return redirect(target)  # type: ignore[return-value]


@blueprint.errorhandler(429)
def too_many_attempts(error: Exception) -> tuple[str, int]:
    """The login throttle answered: the form again, saying why."""
    message = "Too many failed sign-ins; try again in a few minutes."
    return _render(message, _safe_next(request.form.get("next"))), 429


@blueprint.get("/logout")
def logout() -> Response:
    """End the session (on the server: a copied cookie stops working too)."""
    signed_out = session.get(LOGOUT_KEY)
    end_session()
    back_to = url_for("ui_login.login_form", _external=True)
    provider = provider_logout_url(current_app, signed_out, back_to)
    return redirect(provider or "/login")  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Where to go after signing in: same-site UI paths only."""
    return _safe_next(target)


def refuse_sign_in(message: str) -> tuple[str, int]:
    """The sign-in page saying why a sign-in was refused (403)."""
    return _render(message, UI_PREFIX), 403


def _render(error: str | None, target: str) -> str:
    token = session.get("login_csrf") or secrets.token_urlsafe(24)
    session["login_csrf"] = token
    first_admin = None if has_admin(current_platform().engine) else FIRST_ADMIN_COMMAND
    return render_template_string(
        PAGE,
        error=error,
        next=target,
        csrf=token,
        prefix=UI_PREFIX,
        first_admin=first_admin,
        providers=providers_of(current_app),
        local_login=current_platform().settings.local_login,
    )
