"""The API object: flask-smorest generates OpenAPI 3 from the same marshmallow schemas that validate."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import swagger_ui_bundle
from flask import Blueprint, Flask, Response, send_from_directory
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from workbench import __version__
from workbench.api.errors import API_PREFIX, error_response


class ErrorBodySchema(ma.Schema):
    """The inside of every error response."""

    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    details = ma.fields.Raw(required=True)


class ErrorSchema(ma.Schema):
    """Every error of ``/api/v1``: ``{"error": {"code", "message", "details"}}``."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


class WorkbenchApi(Api):
    """flask-smorest's Api speaking the house error format."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        """Answer API errors as ``{"error": ...}``; leave pages (Dash, docs) to Flask."""
        from flask import request

        if not request.path.startswith(API_PREFIX):
            return error
        data = getattr(error, "data", None) or {}
        details: Any = {}
        if "messages" in data:
            details = {"fields": data["messages"]}
        elif "errors" in data:
            details = {"fields": data["errors"]}
        code = (error.name or "error").lower().replace(" ", "_")
        message = data.get("message") or error.description or error.name
        if "messages" in data and code in ("unprocessable_entity", "bad_request"):
            message = "invalid request: " + _field_names(data["messages"])
        response: Response = error_response(error.code or 500, code, message, details)
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):  # 405 names the methods it takes
            value = error.get_response().headers.get(name)
            if value and name not in response.headers:
                response.headers[name] = value
        return response


def _field_names(messages: Any) -> str:
    names: list[str] = []
    if isinstance(messages, dict):
        for location in messages.values():
            if isinstance(location, dict):
                names.extend(str(name) for name in location)
    return ", ".join(names) or "see details"


def create_api(app: Flask) -> WorkbenchApi:
    """Attach the API to ``app``: spec at /api/v1/openapi.json, interactive docs at /api/v1/docs."""
    app.config.update(
        API_TITLE="INSA IIoT Workbench",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from the installed swagger-ui-bundle: the docs work on a plant network without internet.
        OPENAPI_SWAGGER_UI_URL=f"{API_PREFIX}/docs/assets/",
    )
    app.register_blueprint(_docs_assets())
    api = WorkbenchApi(
        app,
        spec_kwargs={
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            }
        },
    )
    # The spec and its docs page are open to everyone; declare it so the route x role walk sees it.
    from workbench.auth.guard import public

    for endpoint, view in app.view_functions.items():
        if endpoint.startswith(("api-docs.", "api-docs-assets.")):
            public(view)
    return api


def _docs_assets() -> Blueprint:
    """Swagger UI's JavaScript and CSS, from the ``swagger-ui-bundle`` package."""
    assets = Blueprint("api-docs-assets", __name__)

    @assets.route(f"{API_PREFIX}/docs/assets/<path:filename>")
    def swagger_ui_asset(filename: str) -> Response:
        """One Swagger UI file (cached a day: they change only with the package)."""
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename, max_age=86_400)

    return assets
