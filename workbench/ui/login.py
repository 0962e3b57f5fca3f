"""The login page and the gate in front of the Dash app: same users, roles and session as the API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, jsonify, redirect, render_template_string, request, session
from sqlalchemy import update

from workbench.auth.passwords import verify_password
from workbench.auth.users import FIRST_ADMIN_COMMAND, find_user, has_admin
from workbench.db.tables import users
from workbench.platform import current_platform

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
<form method="post" action="/login">
<input type="hidden" name="csrf" value="{{ csrf }}"><input type="hidden" name="next" value="{{ next }}">
<div class="mb-3"><label class="form-label" for="email">E-mail</label>
<input class="form-control" id="email" name="email" type="email" autocomplete="username"
 required autofocus></div>
<div class="mb-3"><label class="form-label" for="password">Password</label>
<input class="form-control" id="password" name="password" type="password" autocomplete="current-password"
 required></div>
<button class="btn btn-primary w-100" id="login" type="submit">Sign in</button>
</form></main></body></html>"""


def init_login(app: Flask) -> None:
    """Register the login/logout routes and the gate that sends anonymous UI visitors to the login page."""
    # Lax keeps the session cookie off cross-site POSTs, so Dash callbacks cannot be forged from elsewhere.
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.register_blueprint(blueprint)
    app.before_request(_gate)


def _gate() -> Response | None:
    path = request.path
    if not path.startswith(UI_PREFIX) or path.startswith(UI_PREFIX + "assets/"):
        return None
    if "user_id" in session:
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
    if not secrets.compare_digest(request.form.get("csrf", ""), session.get("login_csrf", "")):
        return _render("The form expired; try again.", target), 400
    email = request.form.get("email", "").strip()
    engine = current_platform().engine
    user = find_user(engine, email) if email else None
    if (
        not user
        or user["disabled"]
        or not verify_password(user["password_hash"], request.form.get("password", ""))
    ):
        return _render("Wrong e-mail or password.", target), 401
    session.clear()
    session.update(user_id=str(user["id"]), role=user["role"], email=user["email"])
    session.permanent = True
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user["id"]).values(last_login=datetime.now(UTC)))
    return redirect(target)  # type: ignore[return-value]


@blueprint.errorhandler(429)
def too_many_attempts(error: Exception) -> tuple[str, int]:
    """The login throttle answered: the form again, saying why."""
    message = "Too many failed sign-ins for this e-mail; try again in a few minutes."
    return _render(message, _safe_next(request.form.get("next"))), 429


@blueprint.get("/logout")
def logout() -> Response:
    """End the session."""
    session.clear()
    return redirect("/login")  # type: ignore[return-value]


def _render(error: str | None, target: str) -> str:
    token = session.get("login_csrf") or secrets.token_urlsafe(24)
    session["login_csrf"] = token
    first_admin = None if has_admin(current_platform().engine) else FIRST_ADMIN_COMMAND
    return render_template_string(
        PAGE, error=error, next=target, csrf=token, prefix=UI_PREFIX, first_admin=first_admin
    )
