"""``/api/v1/notebook-runs``: a run as JSON and its executed notebook as HTML, behind ``notebooks:read``."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.notebooks.fixtures import write_notebook
from workbench.api.errors import init_errors
from workbench.api.openapi import create_api
from workbench.db.engine import make_engine
from workbench.live.bus import EventBus
from workbench.notebooks.blueprint import blp
from workbench.notebooks.render import render_html
from workbench.notebooks.result import NotebookResult
from workbench.notebooks.runner import NotebookRunner
from workbench.platform import EXTENSION, Platform
from workbench.settings import Settings


@pytest.fixture(scope="module")
def api_client(settings: Settings) -> FlaskClient:
    """A small app serving just this blueprint (the lead wires it into create_app)."""
    app = Flask("notebook-runs-test")
    app.config["SECRET_KEY"] = settings.resolved_secret_key()
    app.extensions[EXTENSION] = Platform(settings, make_engine(settings.database_url or "", 2), EventBus())
    init_errors(app)
    create_api(app).register_blueprint(blp)
    return app.test_client()


@pytest.fixture(scope="module")
def executed(
    settings: Settings, notebook_runner: NotebookRunner, tmp_path_factory: pytest.TempPathFactory
) -> NotebookResult:
    folder = tmp_path_factory.mktemp("rendered")
    write_notebook(
        folder,
        "evidence",
        "from workbench.notebooks import api\nsecret_formula = x * 3\n"
        "api.alert('warning', f'pressure spike {secret_formula}', value=secret_formula)",
    )
    runner = NotebookRunner(settings, root=folder, pool=notebook_runner.pool)
    return runner.run("evidence.ipynb", {"x": 7}).raise_for_status()


def test_render_html_with_and_without_code(executed: NotebookResult) -> None:
    page = render_html(executed.output_path or "")
    assert "<html" in page and "pressure spike 21" in page and "secret_formula" in page
    outputs_only = render_html(Path(executed.output_path or ""), hide_code=True)
    assert "pressure spike 21" in outputs_only and "secret_formula" not in outputs_only


def test_run_as_json(
    api_client: FlaskClient,
    executed: NotebookResult,
    headers_for: Callable[[str], dict[str, str]],
    app: Flask,
) -> None:
    response = api_client.get(f"/api/v1/notebook-runs/{executed.run_id}", headers=headers_for("operator"))
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ok" and body["notebook"] == "evidence.ipynb" and body["parameters"] == {"x": 7}
    assert body["records"]["alerts"][0]["message"] == "pressure spike 21"
    assert body["html_url"] == f"/api/v1/notebook-runs/{executed.run_id}/html"
    assert len(body["notebook_hash"]) == 64 and body["alert_ids"] == []


def test_run_as_html(
    api_client: FlaskClient,
    executed: NotebookResult,
    headers_for: Callable[[str], dict[str, str]],
    app: Flask,
) -> None:
    url = f"/api/v1/notebook-runs/{executed.run_id}/html"
    page = api_client.get(url, headers=headers_for("engineer"))
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "pressure spike 21" in page.get_data(as_text=True)
    hidden = api_client.get(url + "?hide_code=true", headers=headers_for("engineer")).get_data(as_text=True)
    assert "secret_formula" not in hidden


def test_permissions_and_missing_runs(
    api_client: FlaskClient,
    executed: NotebookResult,
    headers_for: Callable[[str], dict[str, str]],
    app: Flask,
) -> None:
    url = f"/api/v1/notebook-runs/{executed.run_id}"
    assert api_client.get(url).status_code == 401
    assert api_client.get(url, headers=headers_for("viewer")).status_code == 403
    missing = api_client.get(f"/api/v1/notebook-runs/{uuid.uuid4()}", headers=headers_for("admin"))
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


@pytest.mark.slow
@pytest.mark.chromium
def test_evidence_page_renders_styled_under_its_content_security_policy(
    api_client: FlaskClient, executed: NotebookResult, headers_for: Callable[[str], dict[str, str]]
) -> None:
    from playwright.sync_api import sync_playwright

    from tests.workbench.ui.conftest import CHROMIUM, CHROMIUM_ARGS

    answer = api_client.get(f"/api/v1/notebook-runs/{executed.run_id}/html", headers=headers_for("engineer"))
    policy = answer.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in policy and "script-src" not in policy and "'sha256-" in policy
    html = answer.get_data(as_text=True)

    def open_under(csp: str) -> tuple[int, str]:
        # Chromium fetches the page with the server's headers; count what the policy blocked.
        page = browser.new_page()
        page.route(
            "http://evidence.test/",
            lambda route: route.fulfill(
                status=200, body=html, headers={"Content-Type": "text/html", "Content-Security-Policy": csp}
            ),
        )
        page.add_init_script(
            "window.__blocked = 0; document.addEventListener('securitypolicyviolation',"
            " e => { if (e.violatedDirective.startsWith('style-src')) window.__blocked += 1; });"
        )
        page.goto("http://evidence.test/")
        page.wait_for_load_state("load")
        blocked = page.evaluate("window.__blocked")
        # nbconvert's lab CSS lays each output out as a table row; unstyled it is a plain block.
        display = page.evaluate("getComputedStyle(document.querySelector('.jp-OutputArea-child')).display")
        page.close()
        return blocked, display

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            assert open_under(policy) == (0, "table")
            # The API's blanket policy (what the page got before) blocks every style block: unstyled.
            blocked, display = open_under("default-src 'none'")
            assert blocked > 0 and display == "block"
        finally:
            browser.close()
