"""The role/permission matrix (design §7.3), declared once; every API route names one permission."""

from __future__ import annotations

ROLES = ("admin", "engineer", "operator", "viewer", "device")

PERMISSIONS = (
    "devices:read",
    "devices:write",
    "devices:command",
    "telemetry:read",
    "telemetry:write",
    "quarantine:read",
    "quarantine:replay",
    "alerts:read",
    "alerts:ack",
    "rules:read",
    "rules:write",
    "dashboards:read",
    "dashboards:write",
    "reports:read",
    "reports:generate",
    "notebooks:read",
    "keys:manage",
    "users:manage",
)

_READ_PLANT = {"devices:read", "telemetry:read", "alerts:read", "dashboards:read", "reports:read"}

MATRIX: dict[str, frozenset[str]] = {
    # Full access to all endpoints, user management.
    "admin": frozenset(PERMISSIONS),
    # Read/write devices, rules, dashboards; no user management.
    "engineer": frozenset(set(PERMISSIONS) - {"users:manage"}),
    # Read devices, acknowledge alerts, build dashboards; no config changes.
    "operator": frozenset(_READ_PLANT | {"alerts:ack", "rules:read", "dashboards:write", "notebooks:read"}),
    # Read-only access to dashboards and reports (and the plant data they show).
    "viewer": frozenset(_READ_PLANT),
    # Write telemetry, and read its config and commands, only for its assigned device (each route checks
    # the device; a key's own {"read": false} takes the reads away).
    "device": frozenset({"telemetry:write", "devices:read"}),
}


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return permission in MATRIX.get(role, frozenset())
