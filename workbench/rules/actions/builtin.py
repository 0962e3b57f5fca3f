"""Built-in actions that talk to the platform itself: ``alert`` (bus + MQTT) and ``mqtt`` (templated)."""

from __future__ import annotations

from typing import Any

from workbench.rules.actions.base import Action, ActionContext, register_action
from workbench.rules.conditions import render
from workbench.severity import SEVERITIES


class AlertAction(Action):
    """Announce the alert row (always written) on Socket.IO and MQTT ``insa/alerts/{severity}``."""

    name = "alert"
    default_retries = 2

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """Severity and message template of the alert."""
        return {
            "type": "object",
            "properties": {
                "severity": {"type": "string", "enum": list(SEVERITIES), "default": "warning"},
                "message": {
                    "type": "string",
                    "description": "template: {rule} {device} {key} {value} {threshold}",
                },
            },
            "required": [],
        }

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Publish the alert on the bus (Socket.IO relays it) and on MQTT when a broker is connected."""
        from workbench.live.bus import ALERT

        if context.alert is None:
            return {"skipped": "no alert (schedule rule)"}
        context.platform.bus.publish(ALERT, context.alert)
        topic = f"insa/alerts/{context.alert['severity']}"
        if context.platform.mqtt is not None:
            context.platform.mqtt.publish(topic, context.alert)
            return {"mqtt_topic": topic}
        return {"mqtt_topic": None}


class MqttAction(Action):
    """Publish a templated message to a topic (QoS 0/1, retained or not)."""

    name = "mqtt"
    default_retries = 3

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """Topic and message templates."""
        return {
            "type": "object",
            "properties": {
                "topic": {"type": "string", "description": "template, e.g. plant/alerts/{device_id}"},
                "message": {"type": "string", "description": "template; default: the alert as JSON"},
                "qos": {"type": "integer", "enum": [0, 1], "default": 1},
                "retain": {"type": "boolean", "default": False},
            },
            "required": ["topic"],
        }

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Publish through the platform's MQTT connection."""
        if context.platform.mqtt is None:
            raise ConnectionError("no MQTT broker configured")
        fields = context.fields()
        topic = render(config["topic"], fields)
        body: Any = render(config["message"], fields) if config.get("message") else context.payload()
        context.platform.mqtt.publish(
            topic, body, qos=int(config.get("qos", 1)), retain=bool(config.get("retain"))
        )
        return {"topic": topic}


register_action(AlertAction)
register_action(MqttAction)
