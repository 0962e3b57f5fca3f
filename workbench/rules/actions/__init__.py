"""Rule actions: plugins (alert, email, webhook, mqtt, script, n8n) in a registry, and their worker."""

from workbench.rules.actions.base import Action, ActionContext, action, actions, register_action

__all__ = ["Action", "ActionContext", "action", "actions", "register_action"]
