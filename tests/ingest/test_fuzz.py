"""Property-based fuzzing: random and malformed payloads never crash ingest; each is stored or quarantined."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from ingest.codecs import DecodeError, decode_mqtt, document_readings
from ingest.pipeline import Pipeline
from ingest.points import Reading
from ingest.service import IngestService
from tests.ingest.conftest import count_rows, make_device, wait_until
from tests.ingest.test_mqtt import publish
from tests.workbench.api.fixtures import ApiDevice
from workbench.db.tables import quarantine
from workbench.live.bus import EventBus
from workbench.settings import Settings

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["2026-01-01T00:00:00Z", "1767225600", "yesterday", "", "1e400", "NaN"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
KEYS = st.one_of(st.sampled_from(["t", "temp.c", "a:b-c", "bad key", "", "x" * 120]), st.text(max_size=12))
POINT = st.fixed_dictionaries(
    {"key": KEYS, "value": SCALARS},
    optional={"timestamp": SCALARS, "unit": SCALARS, "quality": SCALARS, "metadata": JSON},
)
MESSAGE = st.fixed_dictionaries(
    {
        "telemetry": st.dictionaries(
            KEYS, st.one_of(SCALARS, st.fixed_dictionaries({"value": SCALARS}, optional={"unit": SCALARS}))
        ),
        "timestamp": SCALARS,
    },
    optional={"metadata": JSON},
)
BODY = st.one_of(POINT, MESSAGE, st.lists(st.one_of(POINT, MESSAGE), max_size=5), JSON)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    readings=st.lists(
        st.builds(
            Reading,
            SCALARS,
            KEYS,
            SCALARS,
            SCALARS,
            SCALARS,
            SCALARS,
            st.none() | st.dictionaries(st.text(max_size=5), SCALARS),
        ),
        max_size=8,
    )
)
def test_validation_accounts_for_every_reading(readings: list[Reading], fuzz_pipeline: Pipeline) -> None:
    result = fuzz_pipeline.validator.validate(readings)
    assert len(result.rows) + len(result.rejected) == len(readings)
    assert all(reason for _, reason in result.rejected)


@settings(max_examples=300, deadline=None)
@given(
    suffix=st.sampled_from(["telemetry", "telemetry/t", "status", "x", "telemetry/a/b"]),
    payload=st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()),
)
def test_mqtt_codec_decodes_or_names_the_reason(suffix: str, payload: bytes) -> None:
    try:
        decoded = decode_mqtt(f"insa/devices/{uuid.uuid4()}/{suffix}", payload)
    except DecodeError as error:
        assert str(error)
    else:
        assert decoded.readings or decoded.status


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=BODY)
def test_http_answers_every_body_without_crashing(
    body: Any, client: FlaskClient, api_device: ApiDevice
) -> None:
    response = client.post("/api/v1/telemetry", json=body, headers=api_device.headers)
    assert response.status_code in (200, 400, 403), response.get_data()
    answer = response.get_json()
    if response.status_code == 200:
        expected = len(document_readings(body, str(api_device.id)))
        assert answer["accepted"] + answer["rejected"] == expected
        assert all(error["reason"] for error in answer["errors"])


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payloads=st.lists(
        st.binary(max_size=48) | BODY.map(lambda v: json.dumps(v).encode()), min_size=500, max_size=500
    )
)
def test_mqtt_random_payloads_are_all_committed_or_quarantined(
    payloads: list[bytes], settings_for_fuzz: Settings, engine: Engine, mqtt_url: str
) -> None:
    device = make_device(engine)
    service = IngestService(
        replace(settings_for_fuzz, mqtt_url=mqtt_url, ingest_client_id=f"fuzz-{uuid.uuid4().hex[:8]}"),
        engine,
        EventBus(),
    )
    service.start()
    try:
        topics = [f"insa/devices/{device}/telemetry", f"insa/devices/{device}/telemetry/k"]
        publish(mqtt_url, [(topics[i % 2], payload, 1) for i, payload in enumerate(payloads)])
        assert service.mqtt is not None
        # Traces of this device's messages, not the ack count: other tests' stragglers on the shared broker
        # (the in-process amqtt sends a few) would count as acks and stop the service one message early.
        wait_until(lambda: _traces(engine, device) >= len(payloads), timeout=30)
        wait_until(lambda: service.mqtt is not None and service.mqtt.settled, timeout=30)
    finally:
        service.stop()
    undecodable = 0
    for i, payload in enumerate(payloads):
        try:
            decode_mqtt(topics[i % 2], payload)
        except DecodeError:
            undecodable += 1
    with engine.connect() as conn:
        quarantined = conn.execute(
            select(func.count()).select_from(quarantine).where(quarantine.c.device_id == str(device))
        ).scalar_one()
    assert quarantined >= undecodable
    assert count_rows(engine, device) + quarantined >= len(payloads)  # every message left a trace


def _traces(engine: Engine, device: uuid.UUID) -> int:
    with engine.connect() as conn:
        quarantined = conn.execute(
            select(func.count()).select_from(quarantine).where(quarantine.c.device_id == str(device))
        ).scalar_one()
    return count_rows(engine, device) + int(quarantined)
