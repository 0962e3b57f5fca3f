"""``email``: send the alert by SMTP (STARTTLS, implicit TLS or plain; credentials from settings)."""

from __future__ import annotations

from typing import Any

from workbench.mail import build_message, send
from workbench.rules.actions.base import Action, ActionContext, register_action
from workbench.rules.conditions import render

DEFAULT_SUBJECT = "[{severity}] {rule}: {device}"
DEFAULT_BODY = (
    "{message}\n\nRule: {rule}\nDevice: {device}\nKey: {key}\nValue: {value}\n"
    "Threshold: {threshold}\nTime: {time}\n"
)


class EmailAction(Action):
    """Mail recipients through the configured SMTP server (``WORKBENCH_SMTP_*``)."""

    name = "email"
    default_retries = 2

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """Recipients and templates."""
        return {
            "type": "object",
            "properties": {
                "to": {"type": "array", "items": {"type": "string"}, "description": "recipient addresses"},
                "subject": {"type": "string", "default": DEFAULT_SUBJECT},
                "body": {"type": "string", "default": DEFAULT_BODY},
                "timeout": {"type": "number", "minimum": 1, "default": 20},
            },
            "required": ["to"],
        }

    def validate(self, config: dict[str, Any], field: str = "action") -> dict[str, str]:
        """Schema checks plus addresses that look like addresses."""
        errors = super().validate(config, field)
        to = config.get("to")
        if isinstance(to, list) and (not to or not all(isinstance(a, str) and "@" in a for a in to)):
            errors[f"{field}.to"] = "must be a non-empty list of e-mail addresses"
        return errors

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Render and send one message to every recipient."""
        fields = context.fields()
        message = build_message(
            context.platform.settings,
            config["to"],
            render(config.get("subject") or DEFAULT_SUBJECT, fields),
            render(config.get("body") or DEFAULT_BODY, fields),
        )
        send(context.platform.settings, message, float(config.get("timeout", 20)))
        return {"to": config["to"], "subject": message["Subject"]}


register_action(EmailAction)
