"""Pushed-protocol codecs by name: built-ins register here through the same door a plugin would."""

from __future__ import annotations

from ingest.push.base import LISTENER, RECEIVERS, PushCodec
from workbench import plugins

CODECS: plugins.Kind[PushCodec] = plugins.Kind(
    "codec", ("ingest.push.mqtt_json", "ingest.push.http_json", "ingest.push.sparkplug_b")
)


def register(cls: type[PushCodec]) -> type[PushCodec]:
    """Register a codec class under its ``name`` (usable as a class decorator); stored as one instance."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.receiver not in RECEIVERS:
        raise ValueError(f"{cls.__name__}.receiver must be one of {', '.join(RECEIVERS)}")
    if cls.receiver == LISTENER and not cls.topics:
        raise ValueError(f"{cls.__name__} names no MQTT topic filter to listen on")
    CODECS.register(cls.name, cls())
    return cls


def codecs() -> dict[str, PushCodec]:
    """Every registered codec by name."""
    return CODECS.all()


def codec_for(topic: str | None) -> PushCodec:
    """The codec of a message on ``topic`` (None or empty: an HTTP document); KeyError when none matches."""
    if not topic:
        return CODECS.get("http-json")
    for codec in CODECS.all().values():
        if codec.matches(topic):
            return codec
    raise KeyError(topic)


def listened() -> list[PushCodec]:
    """The codecs whose topics the generic listener subscribes (plugins, not the built-ins)."""
    return [codec for codec in CODECS.all().values() if codec.receiver == LISTENER]
