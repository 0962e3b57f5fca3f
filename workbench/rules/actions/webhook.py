"""HTTP actions: ``webhook`` (JSON POST, timeout, optional HMAC-SHA256 signature) and its ``n8n`` preset."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.request
from typing import Any

from workbench.rules.actions.base import Action, ActionContext, register_action
from workbench.rules.actions.outbound import parse_networks, post
from workbench.secrets import ACTION, open_all

SIGNATURE_HEADER = "X-Workbench-Signature"


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex>`` HMAC of the body, the value of the signature header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookAction(Action):
    """POST the alert (or schedule tick) as JSON; the worker retries failures with backoff."""

    name = "webhook"
    default_retries = 3

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """URL, timeout, retries, backoff, HMAC secret, extra headers."""
        return {
            "type": "object",
            "properties": {
                "url": {"type": "string", "description": "http(s) URL"},
                "timeout": {"type": "number", "minimum": 0.1, "default": 5},
                "retries": {"type": "integer", "minimum": 0, "default": 3},
                "backoff": {"type": "number", "minimum": 0, "default": 0.5},
                "secret": {
                    "type": "string",
                    "description": f"signs the body: {SIGNATURE_HEADER}: sha256=<hmac>",
                },
                "headers": {"type": "object"},
            },
            "required": ["url"],
        }

    def validate(self, config: dict[str, Any], field: str = "action") -> dict[str, str]:
        """Schema checks plus an http(s) URL."""
        errors = super().validate(config, field)
        url = config.get("url")
        if isinstance(url, str) and not url.startswith(("http://", "https://")):
            errors[f"{field}.url"] = "must be an http:// or https:// URL"
        return errors

    def body(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
        """The JSON document posted."""
        return context.payload()

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """POST once; a non-2xx answer or a network error raises."""
        config = open_all(config, ACTION, context.platform.settings.resolved_secret_key())  # stored sealed
        body = json.dumps(self.body(context, config), default=str).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "insa-workbench"}
        headers.update({str(k): str(v) for k, v in (config.get("headers") or {}).items()})
        if config.get("secret"):
            headers[SIGNATURE_HEADER] = signature(config["secret"], body)
        request = urllib.request.Request(config["url"], data=body, headers=headers, method="POST")
        allowed = parse_networks(context.platform.settings.webhook_allowed_networks)
        return {"status": post(request, float(config.get("timeout", 5)), allowed)}


class N8nAction(WebhookAction):
    """Trigger an n8n workflow through its Webhook node (a webhook preset with a flat body)."""

    name = "n8n"

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """The workflow's webhook URL (production or test URL), optional secret and extra data."""
        schema = super().configuration_schema()
        schema["properties"]["url"]["description"] = "the n8n Webhook node URL (…/webhook/<path>)"
        schema["properties"]["data"] = {
            "type": "object",
            "description": "extra fields passed to the workflow",
        }
        return schema

    def body(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any]:
        """Flat fields n8n expressions read easily ({{$json.severity}}), plus the full payload."""
        return {
            **context.fields(),
            **(config.get("data") or {}),
            "source": "insa-workbench",
            **context.payload(),
        }


register_action(WebhookAction)
register_action(N8nAction)
