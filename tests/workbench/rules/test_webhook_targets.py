"""Webhooks refuse loopback, private and link-local targets and redirects, unless a network is allowed."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from typing import Any

import pytest

from tests.workbench.rules.receivers import HttpReceiver
from workbench.platform import Platform
from workbench.rules.actions.base import ActionContext
from workbench.rules.actions.outbound import BlockedTarget
from workbench.rules.actions.webhook import WebhookAction
from workbench.rules.types import Rule
from workbench.settings import Settings, SettingsError

RULE = Rule(id="r1", name="ssrf", type="threshold", condition={}, actions=[])


def _notify(platform: Platform, allowed: str | None, url: str, **config: Any) -> dict[str, Any] | None:
    configured = replace(platform, settings=replace(platform.settings, webhook_allowed_networks=allowed))
    context = ActionContext(configured, RULE, alert={"id": 1, "severity": "warning"})
    return WebhookAction().notify(context, {"url": url, "timeout": 2, **config})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",  # the receiver itself: loopback
        "http://localhost:{port}/hook",  # a name that resolves to loopback
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.1.2.3/internal",  # private
        "http://[::1]:{port}/hook",  # IPv6 loopback
        "http://[::ffff:127.0.0.1]:{port}/hook",  # IPv4-mapped IPv6 loopback
        "http://127.0.0.1:5432/",  # the database port
    ],
)
def test_internal_targets_are_refused_by_default(rules_platform: Platform, url: str) -> None:
    receiver = HttpReceiver()
    port = receiver.url.split(":")[2].split("/")[0]
    started = time.monotonic()
    try:
        with pytest.raises(BlockedTarget, match="loopback, private or link-local"):
            _notify(rules_platform, None, url.format(port=port), headers={"Authorization": "Bearer t"})
    finally:
        receiver.close()
    assert receiver.requests == []  # nothing reached the receiver
    assert time.monotonic() - started < 1.5  # refused before connecting, not after a timeout


def test_an_allowed_network_is_reached_and_others_stay_refused(rules_platform: Platform) -> None:
    receiver = HttpReceiver("127.0.0.2")  # a second loopback address: its own /32
    try:
        assert _notify(rules_platform, "127.0.0.2/32, 10.0.0.0/8", receiver.url) == {"status": 200}
        with pytest.raises(BlockedTarget):
            _notify(rules_platform, "127.0.0.2/32", receiver.url.replace("127.0.0.2", "127.0.0.1"))
    finally:
        receiver.close()
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed_and_credentials_stay_put(rules_platform: Platform) -> None:
    inside = HttpReceiver("127.0.0.1")  # where the redirect points: loopback, not allowed
    outside = HttpReceiver("127.0.0.2")  # the allowed target, answering 307 to loopback
    outside.redirect_to = inside.url
    try:
        with pytest.raises(ConnectionError, match="redirects are not followed"):
            _notify(rules_platform, "127.0.0.2/32", outside.url, headers={"Authorization": "Bearer t"})
    finally:
        inside.close()
        outside.close()
    assert len(outside.requests) == 1 and inside.requests == []


def test_a_bad_allowed_network_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="WORKBENCH_WEBHOOK_ALLOWED_NETWORKS"):
        Settings.from_env({"WORKBENCH_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,not-a-network"})


def test_localhost_resolves_here() -> None:
    """The ``localhost`` case above is only meaningful where the name resolves to loopback."""
    assert socket.getaddrinfo("localhost", 80)[0][4][0] in {"127.0.0.1", "::1"}
