"""A paho-mqtt 2 client configured from an `mqtt://` or `mqtts://` URL (Sparkplug, the simulator)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class BrokerAddress:
    """Where a broker is and how to log in."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Split an MQTT URL into host, port, TLS flag and credentials."""
    parts = urlsplit(url)
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def make_client(url: str, client_id: str) -> tuple[mqtt.Client, BrokerAddress]:
    """A paho client (MQTT 3.1.1, callback API v2) ready to ``connect`` to the broker at ``url``."""
    address = parse_mqtt_url(url)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client, address
