"""``email``: send the alert by SMTP (STARTTLS, implicit TLS or plain; credentials from settings)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from workbench.rules.actions.base import Action, ActionContext, register_action
from workbench.rules.conditions import render
from workbench.settings import Settings

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
        settings = context.platform.settings
        if not settings.smtp_host:
            raise RuntimeError("e-mail is not configured: set WORKBENCH_SMTP_HOST")
        fields = context.fields()
        message = EmailMessage()
        message["From"] = settings.smtp_from
        message["To"] = ", ".join(config["to"])
        message["Subject"] = render(config.get("subject") or DEFAULT_SUBJECT, fields)
        message.set_content(render(config.get("body") or DEFAULT_BODY, fields))
        send(settings, message, float(config.get("timeout", 20)))
        return {"to": config["to"], "subject": message["Subject"]}


def send(settings: Settings, message: EmailMessage, timeout: float = 20) -> None:
    """Send ``message`` with the SMTP settings (TLS verified against the system's trust store)."""
    assert settings.smtp_host
    mode = settings.smtp_tls.lower()
    if mode not in ("starttls", "ssl", "none"):
        raise ValueError(f"WORKBENCH_SMTP_TLS={settings.smtp_tls!r}: use starttls, ssl or none")
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if mode == "ssl":
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if mode == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


register_action(EmailAction)
