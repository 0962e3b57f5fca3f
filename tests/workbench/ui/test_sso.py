"""Single sign-on through a real OpenID provider (panva's oidc-provider, from npm) on a local port."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from tests.conftest import free_port
from tests.workbench.api.fixtures import PASSWORD
from workbench.auth.oidc import OidcProvider, SsoRefused
from workbench.auth.users import create_user
from workbench.db.tables import users
from workbench.settings import Settings

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "auth" / "oidc"
CLIENT_ID, CLIENT_SECRET = "workbench", "test-client-secret-of-some-length"


def _node_modules() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI"):
            pytest.fail("node and npm are needed for the SSO tests")
        pytest.skip("needs Node.js and npm: apt-get install nodejs npm")
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PROVIDER_DIR, check=True, timeout=300
        )


@pytest.fixture(scope="module")
def sso(settings: Settings) -> Iterator[dict[str, str]]:
    """An OpenID provider and a workbench app (local login off) that signs in through it; their URLs."""
    _node_modules()
    app_port, op_port = free_port(), free_port()
    base = f"http://127.0.0.1:{app_port}"
    provider = subprocess.Popen(
        [
            "node",
            "provider.mjs",
            str(op_port),
            CLIENT_ID,
            CLIENT_SECRET,
            f"{base}/login/sso/plant-sso/callback",
            f"{base}/login",
        ],
        cwd=PROVIDER_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert provider.stdout is not None
    said = [provider.stdout.readline() for _ in range(1)]
    while said[-1] and said[-1].strip() != "ready" and len(said) < 50:  # it warns first (dev keys, Node 20)
        said.append(provider.stdout.readline())
    assert said[-1].strip() == "ready", f"the OpenID provider did not start: {''.join(said)}"
    threading.Thread(target=provider.stdout.read, daemon=True).start()  # drain its warnings
    config = [
        {
            "name": "Plant SSO",
            "issuer": f"http://127.0.0.1:{op_port}",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": "openid email groups",
            "role_claim": "groups",
            "roles": {"plant-admins": "admin", "plant-engineers": "engineer"},
            "default_role": None,
        }
    ]
    from app import create_app

    app = create_app(replace(settings, oidc_providers=json.dumps(config), local_login=False, port=app_port))
    server = make_server("127.0.0.1", app_port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {"base": base, "issuer": f"http://127.0.0.1:{op_port}"}
    finally:
        server.shutdown()
        provider.terminate()
        provider.wait(10)


def _start(browser: requests.Session, base: str) -> requests.Response:
    """Click "Sign in with Plant SSO": the answer is the provider's login form."""
    page = browser.get(f"{base}/login", timeout=10)
    assert "Sign in with Plant SSO" in page.text
    return browser.get(f"{base}/login/sso/plant-sso?next=/ui/", timeout=10)


def _log_in_at_provider(browser: requests.Session, form: requests.Response, name: str) -> requests.Response:
    """Fill the provider's login form; returns its redirect back to the workbench (not followed)."""
    action = re.search(r'action="([^"]+)"', form.text)
    assert action, form.text[:500]
    answer = browser.post(
        requests.compat.urljoin(form.url, action.group(1)),
        data={"prompt": "login", "login": name, "password": "anything"},
        allow_redirects=False,
        timeout=10,
    )
    while answer.is_redirect and "/login/sso/" not in answer.headers["Location"]:
        answer = browser.get(
            requests.compat.urljoin(answer.url, answer.headers["Location"]), allow_redirects=False, timeout=10
        )
    assert answer.is_redirect, answer.text[:500]
    return answer


def _sign_in(base: str, name: str) -> tuple[requests.Session, requests.Response]:
    browser = requests.Session()
    back = _log_in_at_provider(browser, _start(browser, base), name)
    return browser, browser.get(back.headers["Location"], timeout=10)


def test_first_login_creates_the_user_with_the_mapped_role(sso: dict[str, str], app: object) -> None:
    from workbench.platform import EXTENSION

    engine = app.extensions[EXTENSION].engine  # type: ignore[attr-defined]
    for name, role in (("alice", "admin"), ("erin", "engineer")):
        browser, landed = _sign_in(sso["base"], name)
        assert landed.status_code == 200 and urlsplit(landed.url).path.startswith("/ui"), landed.url
        with engine.connect() as conn:
            row = conn.execute(select(users.c.role).where(users.c.email == f"{name}@plant.example")).one()
        assert row.role == role
        assert browser.get(f"{sso['base']}/ui/", allow_redirects=False, timeout=10).status_code == 200
    _, landed = _sign_in(sso["base"], "alice")  # a second sign-in finds the same user
    assert landed.status_code == 200
    with engine.connect() as conn:
        assert len(conn.execute(select(users.c.id).where(users.c.email == "alice@plant.example")).all()) == 1


def test_an_unmapped_group_is_refused(sso: dict[str, str], app: object) -> None:
    from workbench.platform import EXTENSION

    _, landed = _sign_in(sso["base"], "mallory")
    assert landed.status_code == 403 and "no groups of this account is mapped" in landed.text
    engine = app.extensions[EXTENSION].engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert (
            conn.execute(select(users.c.id).where(users.c.email == "mallory@plant.example")).first() is None
        )


def test_a_code_and_state_from_another_browser_are_refused(sso: dict[str, str]) -> None:
    victim = requests.Session()
    _start(victim, sso["base"])  # the victim's browser holds its own state, nonce and PKCE verifier
    attacker = requests.Session()
    back = _log_in_at_provider(attacker, _start(attacker, sso["base"]), "alice")
    query = parse_qs(urlsplit(back.headers["Location"]).query)
    callback = f"{sso['base']}/login/sso/plant-sso/callback"
    foreign = victim.get(callback, params={"code": query["code"][0], "state": query["state"][0]}, timeout=10)
    assert foreign.status_code == 403 and "refused" in foreign.text
    forged = attacker.get(callback, params={"code": query["code"][0], "state": "forged"}, timeout=10)
    assert forged.status_code == 403
    assert attacker.get(f"{sso['base']}/ui/", allow_redirects=False, timeout=10).status_code == 302


def test_local_login_off_refuses_passwords(sso: dict[str, str], app: object) -> None:
    from workbench.platform import EXTENSION

    email = f"local-{time.time_ns()}@example.com"
    create_user(app.extensions[EXTENSION].engine, email, "admin", PASSWORD)  # type: ignore[attr-defined]
    page = requests.get(f"{sso['base']}/login", timeout=10)
    assert 'name="password"' not in page.text and "Sign in with Plant SSO" in page.text
    api = requests.post(
        f"{sso['base']}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=10
    )
    assert api.status_code == 403
    browser = requests.Session()
    browser.get(f"{sso['base']}/login", timeout=10)
    form = browser.post(f"{sso['base']}/login", data={"email": email, "password": PASSWORD}, timeout=10)
    assert form.status_code == 403


def test_logout_ends_the_session_and_the_providers(sso: dict[str, str]) -> None:
    browser, landed = _sign_in(sso["base"], "erin")
    assert landed.status_code == 200
    out = browser.get(f"{sso['base']}/logout", allow_redirects=False, timeout=10)
    target = urlsplit(out.headers["Location"])
    assert f"{target.scheme}://{target.netloc}" == sso["issuer"]
    query = parse_qs(target.query)
    assert query["post_logout_redirect_uri"] == [f"{sso['base']}/login"] and query["id_token_hint"]
    assert browser.get(f"{sso['base']}/ui/", allow_redirects=False, timeout=10).status_code == 302


def test_role_mapping_takes_the_highest_role_and_the_default() -> None:
    provider = OidcProvider("x", "https://op", "c", "s", roles={"ops": "operator", "eng": "engineer"})
    assert provider.role_for({"groups": ["ops", "eng", "other"]}) == "engineer"
    assert provider.role_for({"groups": ["other"]}) == "viewer"
    assert provider.role_for({"groups": "ops"}) == "operator"
    strict = replace(provider, default_role=None)
    with pytest.raises(SsoRefused):
        strict.role_for({"groups": []})
