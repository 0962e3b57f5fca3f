"""A third-party pushed protocol: one module, loaded as a plugin, served by the ingest service's listener."""

from __future__ import annotations

import dataclasses
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from ingest.service import IngestService
from tests.ingest.conftest import count_rows, make_device, wait_until
from workbench import plugins
from workbench.db.tables import quarantine
from workbench.live.bus import EventBus
from workbench.mqtt import host_port
from workbench.settings import Settings

# What a third party writes: one module (here "key=value;key=value" lines on plant/<device id>/kv).
PLUGIN = '''
from ingest.codecs import Decoded, DecodeError
from ingest.points import Reading
from ingest.push.base import PushCodec
from ingest.push.registry import register


@register
class KeyValueCodec(PushCodec):
    """key=value pairs separated by semicolons."""

    name = "{name}"
    topics = ("{prefix}/+/kv",)

    def decode(self, topic, payload):
        device = topic.split("/")[1]
        try:
            pairs = [item.split("=") for item in payload.decode().split(";")]
            return Decoded(readings=[Reading(device, key, float(value)) for key, value in pairs])
        except ValueError as error:
            raise DecodeError(f"not key=value;...: {{error}}") from None
'''


@pytest.fixture
def plugin(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A codec module on sys.path (name, topic prefix), unregistered afterwards."""
    tag = uuid.uuid4().hex[:8]
    name, prefix, module = f"kv-{tag}", f"plant{tag}", f"kv_codec_{tag}"
    (tmp_path / f"{module}.py").write_text(PLUGIN.format(name=name, prefix=prefix))
    sys.path.insert(0, str(tmp_path))
    try:
        yield module, prefix
    finally:
        sys.path.remove(str(tmp_path))
        plugins.unregister("codec", name)


def _publish(url: str, topic: str, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.connect(*host_port(url))
    client.loop_start()
    client.publish(topic, payload, qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.mark.slow
def test_a_plugin_codec_is_received_validated_and_stored(
    plugin: tuple[str, str], settings: Settings, engine: Engine, mqtt_url: str
) -> None:
    module, prefix = plugin
    own = dataclasses.replace(
        settings, mqtt_url=mqtt_url, plugins=module, ingest_client_id=f"push-{uuid.uuid4().hex[:8]}"
    )
    service = IngestService(own, engine, EventBus())  # WORKBENCH_PLUGINS names the module: nothing else
    assert service.push is not None and [c.name for c in service.push.codecs] == [f"kv-{prefix[5:]}"]
    service.start()
    try:
        wait_until(lambda: service.push is not None and service.push.subscribed)
        device = make_device(engine)
        _publish(mqtt_url, f"{prefix}/{device}/kv", b"flow=3.5;pressure=1.25")
        wait_until(lambda: count_rows(engine, device) == 2)
        _publish(mqtt_url, f"{prefix}/{device}/kv", b"flow")  # its own DecodeError: quarantined with it

        def rejected() -> list[str]:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(quarantine.c.reason).where(quarantine.c.topic == f"{prefix}/{device}/kv")
                )
                return [row.reason for row in rows]

        assert "not key=value" in wait_until(rejected)[0]
        assert service.health()["push"]["received"] == 2
    finally:
        service.stop()


def test_without_plugin_codecs_no_listener_runs(settings: Settings, engine: Engine, mqtt_url: str) -> None:
    service = IngestService(dataclasses.replace(settings, mqtt_url=mqtt_url), engine, EventBus())
    assert service.push is None  # the built-ins keep their own receivers: no extra session
