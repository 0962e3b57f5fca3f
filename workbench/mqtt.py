"""The platform's MQTT publisher: device config (retained), commands, alert notifications."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)


def make_client(
    url: str, client_id: str | None = None, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311
) -> mqtt.Client:
    """A paho 2 client configured from ``url`` (mqtt:// or mqtts://, credentials allowed), not connected.

    An ``mqtts://`` URL may name TLS files in its query (``?ca_file=...&cert_file=...&key_file=...``;
    ``Settings`` folds ``WORKBENCH_MQTT_CA_FILE`` and friends in): the CA that signed the broker's
    certificate, and the platform's own client certificate where the broker requires one.
    """
    parts = urlsplit(url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id or f"workbench-{uuid.uuid4().hex[:10]}",
        protocol=protocol,
    )
    if parts.username:
        client.username_pw_set(unquote(parts.username), unquote(parts.password or ""))
    if parts.scheme in ("mqtts", "ssl"):
        files = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        client.tls_set(
            ca_certs=files.get("ca_file"),
            certfile=files.get("cert_file"),
            keyfile=files.get("key_file"),
            cert_reqs=ssl.CERT_REQUIRED,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def login_url(url: str, user: str, password: str) -> str:
    """``url`` with its credentials replaced by ``user`` and ``password`` (a device's own login)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{quote(user, safe='')}:{quote(password, safe='')}@{host}").geturl()


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of an MQTT URL, with the scheme's default port."""
    parts = urlsplit(url)
    default = 8883 if parts.scheme in ("mqtts", "ssl") else 1883
    return parts.hostname or "127.0.0.1", parts.port or default


class MqttPublisher:
    """One connected client, shared by the platform for everything it publishes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = make_client(url)
        self._connected = threading.Event()
        self._client.on_connect = self._on_connect
        self._refused: str | None = None
        self._client.on_disconnect = lambda *args: self._connected.clear()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._refused = reason.getName() if reason.is_failure else None
        if not reason.is_failure:  # a refused login is no connection
            self._connected.set()

    def start(self, timeout: float = 10.0) -> None:
        """Connect and keep the connection (paho reconnects by itself)."""
        host, port = host_port(self.url)
        self._refused = None
        self._client.connect_async(host, port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self._client.loop_stop()
            why = f" ({self._refused})" if self._refused else ""
            raise ConnectionError(f"MQTT broker at {host}:{port} did not accept a connection{why}")

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up."""
        return self._connected.is_set()

    def publish(
        self, topic: str, payload: Any, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> None:
        """Publish ``payload`` (JSON-encoded unless bytes/str) and wait until the broker has it (QoS 1)."""
        body = payload if isinstance(payload, bytes | str) else json.dumps(payload, default=str)
        info = self._client.publish(topic, body, qos=qos, retain=retain)
        if qos > 0:
            info.wait_for_publish(timeout)
            if not info.is_published():
                raise ConnectionError(f"MQTT publish to {topic} was not acknowledged")

    def health(self) -> dict[str, Any]:
        """Health check: raises when disconnected."""
        if not self.connected:
            raise ConnectionError("MQTT publisher disconnected")
        return {"url": _redacted(self.url)}


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"
