"""Logins and topic checks for the in-process amqtt broker: the same password and ACL rules as Mosquitto.

amqtt 0.12 loads plugins named in its ``plugins`` config; each gets its ``Config`` dataclass filled from
the entry's mapping. ``DeviceLogins`` accepts the service user and devices whose password matches an
entry of the password file ``ingest.device_auth.MosquittoAuth`` maintains (reread when it changes), and
refuses anonymous clients. ``DeviceTopics`` lets each user publish, subscribe and receive only what the
ACL patterns allow it. ``GuardedBroker`` closes a leak of amqtt 0.12: on every CONNECT it sends the
retained messages of *every* session's subscriptions (a device would read all retained configs), and
retained messages skip the receive check.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from ingest.device_auth import read_passwords, subscription_allowed, topic_allowed, verify_hash


class DeviceLogins(BaseAuthPlugin):
    """Accepts a client only when its user name and password match the password file."""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._folder = Path(self._get_config_option("folder", ""))
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, str] = {}

    def _passwords(self) -> dict[str, str]:
        try:
            stat = (self._folder / "passwd").stat()
            stamp = (stat.st_mtime_ns, stat.st_ino)
        except FileNotFoundError:
            return {}
        if stamp != self._stamp:  # the platform rewrote the file (a key issued or revoked)
            self._users, self._stamp = read_passwords(self._folder), stamp
        return self._users

    async def authenticate(self, *, session: Session) -> bool | None:
        """True for a known user with the right password; False for anyone else, anonymous included."""
        user, password = session.username, session.password
        if not user or password is None:
            return False
        hashed = self._passwords().get(user)
        return hashed is not None and verify_hash(password, hashed)

    @dataclass
    class Config:
        """Where the password file lives."""

        folder: str = ""


class DeviceTopics(BaseTopicPlugin):
    """Each user reaches only the topics the ACL patterns give it (the service user reaches all)."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        """Whether ``session`` may do ``action`` on ``topic``."""
        user = session.username if session is not None else None
        if not user or not topic:
            return False
        if action == Action.SUBSCRIBE:
            return subscription_allowed(user, topic)
        return topic_allowed(user, topic, write=action == Action.PUBLISH)

    @dataclass
    class Config:
        """No options: the rules are the ACL patterns of ``ingest.device_auth``."""


class GuardedBroker(Broker):
    """amqtt's broker, handing retained messages only to a session's own subscriptions, receive-checked."""

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(other.client_id == session.client_id for other, _ in subscribers):
            return  # someone else's subscription (amqtt walks them all on CONNECT) or a refused one
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks: list[asyncio.Task[Any]] = []
        for topic, retained in list(self._retained_messages.items()):
            if not self._matches(topic, topic_filter):
                continue
            if not await self._topic_filtering(session, topic=topic, action=Action.RECEIVE):
                continue
            level = min(qos, retained.qos or qos)
            tasks.append(
                asyncio.ensure_future(handler.mqtt_publish(retained.topic, retained.data, level, retain=True))
            )
        if tasks:
            await asyncio.wait(tasks)
