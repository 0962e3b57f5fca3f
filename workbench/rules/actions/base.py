"""The action plugin contract and registry (Redash-destination style: a schema and one verb, ``notify``).

A plugin is a class with ``name``, ``configuration_schema()`` (a small JSON Schema of the action object's
fields besides ``type``) and ``notify(context, config)``, which does the work and returns details for the
action log, or raises. Register with :func:`register_action`; built-ins register through the same door.
The worker (``workbench.rules.actions.worker``) runs ``notify`` off the ingest path, retries with backoff
and logs every execution in ``action_log``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from workbench import plugins
from workbench.platform import Platform
from workbench.rules.conditions import Errors
from workbench.rules.types import Rule

_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


@dataclass
class ActionContext:
    """What an action acts on: the rule, the alert (JSON) or the schedule's due time."""

    platform: Platform
    rule: Rule
    alert: dict[str, Any] | None = None
    due_at: datetime | None = None

    def fields(self) -> dict[str, Any]:
        """Values for message templates: rule, device, key, value, threshold, severity, message, time."""
        alert = self.alert or {}
        device = alert.get("device_name") or alert.get("device_id")
        return {
            "rule": self.rule.name,
            "rule_id": self.rule.id,
            "device": device,
            "device_id": alert.get("device_id"),
            "key": alert.get("key"),
            "value": alert.get("value"),
            "threshold": alert.get("threshold"),
            "severity": alert.get("severity", self.rule.severity),
            "message": alert.get("message", ""),
            "alert_id": alert.get("id"),
            "time": alert.get("triggered_at") or (self.due_at.isoformat() if self.due_at else None),
        }

    def payload(self) -> dict[str, Any]:
        """The JSON document webhooks, n8n and scripts receive."""
        return {
            "event": "alert" if self.alert else "schedule",
            "rule": {"id": self.rule.id, "name": self.rule.name, "type": self.rule.type},
            "alert": self.alert,
            "due_at": self.due_at.isoformat() if self.due_at else None,
        }


class Action:
    """Base class of action plugins."""

    name: ClassVar[str] = ""
    default_retries: ClassVar[int] = 0

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """JSON Schema of the action's configuration (the action object minus ``type``)."""
        return {"type": "object", "properties": {}, "required": []}

    def validate(self, config: dict[str, Any], field: str = "action") -> Errors:
        """Errors naming the field, checked against the configuration schema (required, types, enums)."""
        schema = self.configuration_schema()
        errors: Errors = {}
        for name in schema.get("required", []):
            if config.get(name) in (None, ""):
                errors[f"{field}.{name}"] = "required"
        for name, spec in schema.get("properties", {}).items():
            if name not in config or config[name] is None or f"{field}.{name}" in errors:
                continue
            value = config[name]
            expected = _TYPES.get(spec.get("type", ""), object)
            if not isinstance(value, expected) or (isinstance(value, bool) and spec.get("type") != "boolean"):
                errors[f"{field}.{name}"] = f"must be {spec.get('type')}"
            elif "enum" in spec and value not in spec["enum"]:
                errors[f"{field}.{name}"] = f"must be one of {', '.join(map(str, spec['enum']))}"
            elif "minimum" in spec and value < spec["minimum"]:
                errors[f"{field}.{name}"] = f"must be >= {spec['minimum']}"
        return errors

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Do the action; return details for the log; raise on failure (the worker retries)."""
        raise NotImplementedError


ACTIONS: plugins.Kind[Action] = plugins.Kind(
    "action", tuple(f"workbench.rules.actions.{m}" for m in ("builtin", "email", "script", "webhook"))
)


def register_action(action: Action | type[Action]) -> Action:
    """Register an action plugin (class or instance) under its name; returns the instance."""
    instance = action() if isinstance(action, type) else action
    return ACTIONS.register(instance.name, instance)


def action(name: str) -> Action:
    """The plugin called ``name`` (KeyError when unknown)."""
    return ACTIONS.get(name)


def actions() -> dict[str, Action]:
    """Every registered action plugin by name."""
    return ACTIONS.all()
