"""Sign in with an OpenID provider: authorization code with PKCE (Authlib), then a UI session."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import urlencode

from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, Response, abort, redirect, request, session, url_for
from sqlalchemy import update

from workbench.auth.guard import start_session
from workbench.auth.oidc import OidcProvider, SsoRefused, parse_providers, sign_in_user
from workbench.db.tables import users
from workbench.platform import EXTENSION, current_platform
from workbench.settings import SettingsError, env_name

log = logging.getLogger(__name__)
blueprint = Blueprint("ui_sso", __name__)
PROVIDERS = "workbench.sso"
LOGOUT_KEY = "sso_logout"  # provider slug and id token, for the provider's end-session endpoint


def init_sso(app: Flask) -> None:
    """Register every configured provider with Authlib and the sign-in routes."""
    settings = app.extensions[EXTENSION].settings
    oauth = OAuth(app)
    try:
        found = parse_providers(settings.oidc_providers)
    except ValueError as error:
        raise SettingsError(f"{env_name('oidc_providers')}: {error}") from None
    providers = {provider.slug: provider for provider in found}
    for slug, provider in providers.items():
        oauth.register(
            slug,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
            server_metadata_url=provider.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": provider.scopes, "code_challenge_method": "S256"},
        )
    app.extensions[PROVIDERS] = (oauth, providers)
    app.register_blueprint(blueprint)


def providers_of(app: Flask) -> list[OidcProvider]:
    """The configured providers, for the sign-in page's buttons."""
    return list(app.extensions[PROVIDERS][1].values())


def _client(slug: str) -> tuple[object, OidcProvider]:
    from flask import current_app

    oauth, providers = current_app.extensions[PROVIDERS]
    if slug not in providers:
        abort(404)
    return oauth.create_client(slug), providers[slug]


@blueprint.get("/login/sso/<slug>")
def start(slug: str) -> Response:
    """Send the browser to the provider (state, nonce and PKCE verifier kept in the session)."""
    client, _ = _client(slug)
    session["sso_next"] = request.args.get("next") or "/ui/"
    callback = url_for("ui_sso.callback", slug=slug, _external=True)
    return client.authorize_redirect(callback)  # type: ignore[attr-defined]


@blueprint.get("/login/sso/<slug>/callback")
def callback(slug: str) -> Response | tuple[str, int]:
    """Check the provider's answer (state, nonce, ID token), then sign the user in or say why not."""
    from workbench.ui.login import refuse_sign_in, safe_next

    client, provider = _client(slug)
    try:
        token = client.authorize_access_token()  # type: ignore[attr-defined]
        claims = dict(token.get("userinfo") or {})  # the verified ID token's claims
        if "email" not in claims or provider.role_claim not in claims:
            # Providers may keep scope claims for the UserInfo endpoint; it must speak of the same subject.
            extra = dict(client.userinfo(token=token))  # type: ignore[attr-defined]
            if extra.get("sub") != claims.get("sub"):
                raise SsoRefused("the UserInfo answer is about another subject than the ID token")
            claims = {**extra, **claims}
        user = sign_in_user(current_platform().engine, provider, claims)
    except (OAuthError, SsoRefused) as error:
        log.warning("sign-in through %s refused: %s", provider.name, error)
        return refuse_sign_in(f"Sign-in through {provider.name} refused: {error}")
    target = safe_next(session.pop("sso_next", None))
    start_session(user)
    session[LOGOUT_KEY] = {"slug": slug, "id_token": token.get("id_token")}
    with current_platform().engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(last_login=datetime.now(UTC)))
    return redirect(target)  # type: ignore[return-value]


def provider_logout_url(app: Flask, signed_out: dict[str, str] | None, back_to: str) -> str | None:
    """The provider's end-session URL for a user who signed in through it, when it offers one."""
    if not signed_out:
        return None
    oauth, providers = app.extensions[PROVIDERS]
    if signed_out.get("slug") not in providers:
        return None
    metadata = oauth.create_client(signed_out["slug"]).load_server_metadata()
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return None
    query = {"post_logout_redirect_uri": back_to, "client_id": providers[signed_out["slug"]].client_id}
    if signed_out.get("id_token"):
        query["id_token_hint"] = signed_out["id_token"]
    return f"{endpoint}?{urlencode(query)}"
