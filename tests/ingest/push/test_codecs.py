"""The pushed protocols' codecs: registered like any plugin, each decoding its own messages."""

from __future__ import annotations

import time
import uuid

import orjson
import pytest

from ingest.codecs import DecodeError, decode_mqtt, document_readings
from ingest.connectors import sparkplug_proto as spb
from ingest.push.base import PushCodec
from ingest.push.registry import codec_for, codecs, listened, register
from workbench import plugins


def test_the_built_ins_are_registered_with_their_receivers() -> None:
    found = codecs()
    assert {name: codec.receiver for name, codec in found.items() if name in BUILT_INS} == BUILT_INS
    assert plugins.registered("codec").keys() >= BUILT_INS.keys()  # through the one registry
    assert not [codec for codec in listened() if codec.name in BUILT_INS]  # they keep their receivers


BUILT_INS = {"mqtt-json": "ingest", "http-json": "http", "sparkplug-b": "sparkplug"}


def test_mqtt_json_decodes_as_the_ingest_service_does() -> None:
    device = str(uuid.uuid4())
    topic = f"insa/devices/{device}/telemetry"
    body = orjson.dumps({"timestamp": "2026-01-01T00:00:00Z", "telemetry": {"flow": {"value": 3.5}}})
    codec = codec_for(topic)
    assert codec.name == "mqtt-json"
    assert codec.decode(topic, body) == decode_mqtt(topic, body)
    assert codec_for(f"insa/devices/{device}/status").decode("insa/devices/x/status", b"online").status
    with pytest.raises(DecodeError, match="is not insa/devices/ID/telemetry"):  # its own reason, kept
        codec_for(f"insa/devices/{device}/other").decode(f"insa/devices/{device}/other", b"{}")


def test_http_json_decodes_documents() -> None:
    device = str(uuid.uuid4())
    document = [
        {"device_id": device, "key": "flow", "value": 1.0},
        {"device_id": device, "key": "t", "value": 2},
    ]
    codec = codec_for(None)
    assert codec.name == "http-json"
    assert codec.decode("", orjson.dumps(document)).readings == document_readings(document)
    with pytest.raises(DecodeError, match="not JSON"):
        codec.decode("", b"{nope")


def test_sparkplug_b_decodes_named_metrics_of_births_and_data() -> None:
    payload = spb.Payload(timestamp=int(time.time() * 1000), seq=0)
    spb.set_metric_value(payload.metrics.add(name="bdSeq"), spb.INT64, 3)  # bookkeeping, not telemetry
    spb.set_metric_value(payload.metrics.add(name="Pump/Flow"), spb.DOUBLE, 12.5)
    spb.set_metric_value(payload.metrics.add(name="Pump/Count"), spb.INT32, -2)
    topic = "spBv1.0/plant/DBIRTH/edge1/pump7"
    codec = codec_for(topic)
    assert codec.name == "sparkplug-b"
    readings = codec.decode(topic, payload.SerializeToString()).readings
    assert [(r.device_id, r.value) for r in readings] == [
        ("spBv1.0/plant/edge1/pump7", 12.5),
        ("spBv1.0/plant/edge1/pump7", -2),
    ]
    assert codec.decode("spBv1.0/plant/NCMD/edge1", payload.SerializeToString()).readings == []
    with pytest.raises(DecodeError, match="not a Sparkplug B payload"):
        codec.decode(topic, b"\xff\xff\xff")


def test_a_codec_is_checked_when_registered() -> None:
    class Nameless(PushCodec):
        topics = ("x/#",)

    class Deaf(PushCodec):
        name = "deaf"

    class Elsewhere(PushCodec):
        name, topics, receiver = "elsewhere", ("x/#",), "carrier-pigeon"

    for cls, reason in ((Nameless, "no name"), (Deaf, "no MQTT topic"), (Elsewhere, "receiver")):
        with pytest.raises(ValueError, match=reason):
            register(cls)
    assert "deaf" not in codecs()


def test_no_codec_for_a_topic_nobody_reads() -> None:
    with pytest.raises(KeyError):
        codec_for("factory/line1/raw")
