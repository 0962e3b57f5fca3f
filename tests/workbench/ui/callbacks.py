"""Dash callback requests as the browser sends them, for tests that forge UI actions on the server."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

DISPATCH = "/ui/_dash-update-component"


def _prop(spec: str, value: Any = None) -> dict[str, Any]:
    component, prop = spec.rsplit(".", 1)
    return {"id": component, "property": prop, "value": value}


def fire(
    client: FlaskClient,
    outputs: list[str],
    inputs: dict[str, Any],
    state: dict[str, Any],
    changed: str,
) -> Any:
    """POST one callback: ``outputs`` as ``"id.prop"``, inputs and state as ``{"id.prop": value}``."""
    body = {
        "output": ".." + "...".join(outputs) + ".." if len(outputs) > 1 else outputs[0],
        "outputs": [{"id": o.rsplit(".", 1)[0], "property": o.rsplit(".", 1)[1]} for o in outputs]
        if len(outputs) > 1
        else {"id": outputs[0].rsplit(".", 1)[0], "property": outputs[0].rsplit(".", 1)[1]},
        "inputs": [_prop(k, v) for k, v in inputs.items()],
        "changedPropIds": [changed],
        "state": [_prop(k, v) for k, v in state.items()],
    }
    return client.post(DISPATCH, json=body)


def disable_rule(client: FlaskClient, rule_id: str) -> Any:
    """The rules page's Disable button with ``rule_id`` selected."""
    return fire(
        client,
        ["rule-result.children", "rules-grid.rowData"],
        {"rule-enable.n_clicks": None, "rule-disable.n_clicks": 1},
        {"rules-grid.selectedRows": [{"id": rule_id}]},
        "rule-disable.n_clicks",
    )


def acknowledge_alert(client: FlaskClient, alert_id: str) -> Any:
    """The alerts page's Acknowledge button with ``alert_id`` selected."""
    return fire(
        client,
        ["alert-action-result.children", "alerts-grid.rowTransaction"],
        {"alert-ack.n_clicks": 1, "alert-resolve.n_clicks": None},
        {"alerts-grid.selectedRows": [{"id": alert_id}], "alert-comment.value": "forged"},
        "alert-ack.n_clicks",
    )


def save_device_config(client: FlaskClient, device_id: str, config: str) -> Any:
    """The device page's Save configuration button."""
    return fire(
        client,
        ["config-result.children"],
        {"config-save.n_clicks": 1},
        {"config-text.value": config, "device-id.data": device_id},
        "config-save.n_clicks",
    )
