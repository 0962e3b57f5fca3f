"""Whole-rule validation for create and update: each error names its field (``condition.key``)."""

from __future__ import annotations

from typing import Any

from workbench.rules.actions.base import actions
from workbench.rules.conditions import Errors, validate_target
from workbench.rules.types import normalise_actions, rule_types


def validate_rule(body: dict[str, Any]) -> Errors:
    """Errors of a complete rule document (name, type, target, condition, action, numbers)."""
    errors: Errors = {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        errors["name"] = "required: a non-empty string"
    types = rule_types()
    kind = body.get("type", "threshold")
    if kind not in types:
        errors["type"] = f"must be one of {', '.join(sorted(types))}"
    condition = body.get("condition")
    if not isinstance(condition, dict):
        errors["condition"] = "required: an object"
    elif kind in types:
        errors.update(types[kind].validate(condition))
    errors.update(validate_target(body.get("target"), body.get("device_id")))
    errors.update(validate_actions(body.get("action")))
    for field, minimum in (("cooldown_seconds", 0), ("priority", 0)):
        value = body.get(field)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < minimum):
            errors[field] = f"must be an integer >= {minimum}"
    for field in ("enabled", "auto_resolve"):
        if field in body and not isinstance(body[field], bool):
            errors[field] = "must be true or false"
    return errors


def validate_actions(action: Any) -> Errors:
    """Errors of a rule's ``action``: one action object or a list of them, each checked by its plugin."""
    if action is None:
        return {"action": "required: an action object (or a list of them) with a type"}
    if not isinstance(action, dict | list) or (isinstance(action, list) and not action):
        return {"action": "must be an action object or a non-empty list of them"}
    items = normalise_actions(action)
    if len(items) != (len(action) if isinstance(action, list) else 1):
        return {"action": "every action must be an object"}
    registry = actions()
    errors: Errors = {}
    for index, item in enumerate(items):
        field = "action" if isinstance(action, dict) else f"action[{index}]"
        kind = item.get("type")
        if kind not in registry:
            errors[f"{field}.type"] = f"must be one of {', '.join(sorted(registry))}"
            continue
        config = {k: v for k, v in item.items() if k not in ("type", "retries", "backoff")}
        errors.update(registry[kind].validate(config, field))
        for knob in ("retries", "backoff"):
            value = item.get(knob)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                errors[f"{field}.{knob}"] = "must be a number >= 0"
    return errors
