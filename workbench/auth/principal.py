"""Who is calling: a user (JWT or UI session) or a device (API key)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from workbench.auth.permissions import allowed
from workbench.errors import ApiError


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and what it may do."""

    kind: str  # "user", "device" or "service" (a service token: its scopes are its permissions)
    id: uuid.UUID
    role: str
    email: str | None = None
    device_id: uuid.UUID | None = None
    key_id: uuid.UUID | None = None
    rate_limit: int | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def may(self, permission: str) -> bool:
        """Whether this caller holds ``permission``: its role's, or a service token's scopes."""
        if self.kind == "service":
            allowed("admin", permission)  # an unknown permission raises, as for roles
            return permission in self.claims.get("scopes", ())
        return allowed(self.role, permission)

    def check(self, permission: str) -> None:
        """Raise 403 unless this caller holds ``permission`` (as the API's guard does)."""
        if not self.may(permission):
            who = "this service token" if self.kind == "service" else f"role {self.role}"
            raise ApiError(403, "forbidden", f"{who} lacks {permission}")

    @property
    def is_device(self) -> bool:
        """Whether this is a device authenticated by API key."""
        return self.kind == "device"

    def may_touch_device(self, device_id: uuid.UUID | str) -> bool:
        """Devices reach only their own device; users reach any (their role decides the verb)."""
        if not self.is_device:
            return True
        return str(self.device_id) == str(device_id)


def authorize(actor: Principal | None, permission: str) -> Principal:
    """``actor`` when it holds ``permission`` (the check of every service function); 401 or 403 otherwise."""
    if actor is None:
        raise ApiError(401, "unauthorized", "authentication required (Bearer token or X-API-Key)")
    actor.check(permission)
    return actor
