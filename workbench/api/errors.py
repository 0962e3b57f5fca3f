"""The one error format of ``/api/v1``: ``{"error": {"code", "message", "details"}}``, never HTML."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"


class ApiError(Exception):
    """An error to return to the client with a status, a machine code and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """A JSON error response in the house format."""
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def _is_api() -> bool:
    return request.path.startswith(API_PREFIX)


def init_errors(app: Flask) -> None:
    """Make every error under ``/api/v1`` (and every 5xx) answer in the house JSON format."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        if not _is_api():
            return error
        code = (error.name or "error").lower().replace(" ", "_")
        details = getattr(error, "data", None) or {}
        if isinstance(details, dict) and "messages" in details:
            details = {"fields": details["messages"]}
        response = error_response(error.code or 500, code, error.description or error.name, details)
        for header in ("Retry-After", "WWW-Authenticate", "Allow"):
            if error.get_response().headers.get(header):
                response.headers[header] = error.get_response().headers[header]
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; the server log has details")
