"""The platform's error type for callers over HTTP: a status, a machine code, a message and details.

Low in the house so ``auth`` raises it without importing ``api``; ``workbench.api.errors`` renders it as
the one error format of ``/api/v1``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error to return to the client with a status, a machine code and details."""

    def __init__(
        self, status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers or {}
