"""The API description and its docs page: usable without internet, formats listed."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def test_docs_page_loads_swagger_ui_from_the_package(client: FlaskClient) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and not [s for s in sources if s.startswith(("http://", "https://", "//"))], sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.data) > 1000, source  # the real files, not an empty answer
    bundle = client.get("/api/v1/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.data
    assert client.get("/api/v1/docs/assets/../../openapi.json").status_code == 404


def test_report_formats_are_an_enum(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    params = spec["paths"]["/api/v1/reports/{format_name}"]["post"]["parameters"]
    fmt = next(p for p in params if p["name"] == "format_name")
    assert set(fmt["schema"]["enum"]) >= {"pdf", "excel", "zip", "html"}
