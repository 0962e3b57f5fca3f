"""The one error format of ``/api/v1``: ``{"error": {"code", "message", "details"}}``, never HTML."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from flask import Flask, Response, g, jsonify, request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from workbench.db.engine import unreachable
from workbench.errors import ApiError

__all__ = ["ApiError", "database_unavailable", "error_response", "init_errors", "own_retry_after"]

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# Seconds a client is told to wait (Retry-After) when the database cannot be reached.
DATABASE_RETRY_AFTER = 5


def database_unavailable(message: str = "the database cannot be reached; try again shortly") -> ApiError:
    """The 503 (with Retry-After) of a request the database could not serve."""
    return ApiError(503, "unavailable", message, headers={"Retry-After": str(DATABASE_RETRY_AFTER)})


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """A JSON error response in the house format."""
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def own_retry_after(response: Response) -> Response:
    """After-request hook: a Retry-After an ApiError set wins over the one the rate limiter writes."""
    own = g.get("retry_after")
    if own is not None:
        response.headers["Retry-After"] = own
    return response


def _is_api() -> bool:
    return request.path.startswith(API_PREFIX)


def init_errors(app: Flask) -> None:
    """Make every error under ``/api/v1`` (and every 5xx) answer in the house JSON format."""

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        response = error_response(error.status, error.code, error.message, error.details)
        response.headers.update(error.headers)
        if "Retry-After" in error.headers:
            g.retry_after = error.headers["Retry-After"]  # kept over the rate limiter's (own_retry_after)
        return response

    @app.errorhandler(DBAPIError)
    @app.errorhandler(PoolTimeout)
    @app.errorhandler(psycopg.OperationalError)
    def _database_error(error: Exception) -> Response:
        # Down, restarting ("the database system is starting up") or saturated: the client may retry.
        if not unreachable(error) and not isinstance(error, psycopg.OperationalError):
            return _unexpected(error)
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        return _api_error(database_unavailable())

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
