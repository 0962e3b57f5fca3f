"""HTTP JSON: the documents devices POST to ``/api/v1/ingest`` (a point, a message, or an array of them)."""

from __future__ import annotations

import orjson

from ingest.codecs import Decoded, DecodeError, document_readings
from ingest.push.base import PushCodec
from ingest.push.registry import register


@register
class HttpJsonCodec(PushCodec):
    """JSON documents over HTTP (received by ``POST /api/v1/ingest``; no MQTT topic)."""

    name = "http-json"
    receiver = "http"

    def decode(self, topic: str, payload: bytes) -> Decoded:
        """The readings of one document; ``topic`` is unused (the request's key names the device)."""
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise DecodeError(f"payload is not JSON: {error}") from None
        return Decoded(readings=document_readings(body))
