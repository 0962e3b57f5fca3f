"""The MQTT fast path gives exactly the rows of the full path (codecs + Validator), or declines."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from ingest.codecs import DecodeError, decode_mqtt
from ingest.copy_binary import CopyEncoder
from ingest.directory import DeviceDirectory
from ingest.fastpath import FastRows
from ingest.mqtt_client import parse_publish
from ingest.validation import Bounds, Row, Validator
from tests.ingest.conftest import make_device

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def validator_and_device(engine: Engine) -> tuple[Validator, uuid.UUID]:
    """A validator over the session database and one known device with a declared text key."""
    device = make_device(engine, ["mode"])
    directory = DeviceDirectory(engine)
    directory.load()
    # The default magnitude bound, so the agreement properties below cover values beyond it too.
    return Validator(directory, Bounds(timedelta(days=30), timedelta(seconds=300), 1e100)), device


def full_path(validator: Validator, topic: str, payload: bytes) -> tuple[list[Row], int] | None:
    """Rows and rejection count of the full path; None when the message does not decode."""
    try:
        decoded = decode_mqtt(topic, payload)
    except DecodeError:
        return None
    result = validator.validate(decoded.readings, NOW)
    return result.rows, len(result.rejected)


def check(validator: Validator, device: uuid.UUID, body: Any, key: str | None = None) -> bool:
    """Run both paths on one message; when the fast path takes it, its rows must be the full path's."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    topic = f"insa/devices/{device}/telemetry" + (f"/{key}" if key else "")
    fast = FastRows(validator, NOW)
    taken = fast.single(str(device), key, payload) if key else fast.message(str(device), payload)
    if not taken:
        assert fast.rows == []
        return False
    expected = full_path(validator, topic, payload)
    assert expected is not None, "fast path took a message the codec refuses"
    rows, rejected = expected
    assert rejected == 0, "fast path took a message the validator rejects (in part)"
    assert fast.rows == rows
    return True


def test_common_messages_take_the_fast_path(validator_and_device: tuple[Validator, uuid.UUID]) -> None:
    validator, device = validator_and_device
    message = {
        "timestamp": "2026-06-01T11:59:00Z",
        "telemetry": {"temperature": {"value": 25.5, "unit": "C"}, "count": 3, "p": {"value": -1e-3}},
        "metadata": {"quality": 90, "source": "plc-1"},
    }
    assert check(validator, device, message)
    assert check(validator, device, {**message, "device_id": str(device).upper()})
    assert check(validator, device, {"telemetry": {"a": 1.5}})
    assert check(validator, device, b"21.5", "temperature")
    assert check(validator, device, b"7", "count")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ({"telemetry": {"t": {"value": "hot"}}}, None),  # text: only declared keys, full path explains
        ({"telemetry": {"mode": "auto"}}, None),  # declared text: full path stores it
        ({"telemetry": {"t": {"value": 1, "timestamp": 5}}}, None),  # per-item time
        ({"telemetry": {"t": True}}, None),  # booleans become 0/1 on the full path
        ({"telemetry": {"bad key": 1}}, None),
        ({"timestamp": "2020-01-01T00:00:00Z", "telemetry": {"t": 1}}, None),  # too old
        ({"metadata": {"quality": 101}, "telemetry": {"t": 1}}, None),
        ({"metadata": {"quality": 90.0}, "telemetry": {"t": 1}}, None),
        ({"device_id": str(uuid.uuid4()), "telemetry": {"t": 1}}, None),
        ({"telemetry": {}}, None),
        ([1, 2], None),
        (b"NaN", "t"),
        (b"1e999", "t"),
        (b"true", "t"),
        (b'{"value": 1}', "t"),
        (b"hot", "mode"),
    ],
)
def test_unusual_messages_decline(
    validator_and_device: tuple[Validator, uuid.UUID], body: Any, key: str | None
) -> None:
    validator, device = validator_and_device
    assert not check(validator, device, body, key)


def test_values_beyond_the_magnitude_bound_are_quarantined_with_their_reason(
    validator_and_device: tuple[Validator, uuid.UUID],
) -> None:
    from ingest.points import Reading

    validator, device = validator_and_device
    for value in (1e200, -1e101, 10**101):
        assert not check(validator, device, {"telemetry": {"t": value}})
        assert not FastRows(validator, NOW).point({"key": "t", "value": value}, str(device))
        result = validator.validate([Reading(str(device), "t", value)], NOW)
        assert result.rows == []
        [(_, reason)] = result.rejected
        assert "magnitude bound 1e+100" in reason and "WORKBENCH_INGEST_MAX_ABS_VALUE" in reason
    for value in (1e100, -1e100, 5e-324, -0.0):  # the bound itself, subnormals and -0.0 are stored
        assert check(validator, device, {"telemetry": {"t": value}})
        assert validator.validate([Reading(str(device), "t", value)], NOW).rows[0][3] == value


def test_unknown_device_declines(validator_and_device: tuple[Validator, uuid.UUID]) -> None:
    validator, _ = validator_and_device
    fast = FastRows(validator, NOW)
    assert not fast.message(str(uuid.uuid4()), b'{"telemetry": {"t": 1}}')
    assert not fast.single("not-a-uuid", "t", b"1")


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
items = st.one_of(
    scalars,
    st.dictionaries(st.sampled_from(["value", "unit", "quality", "timestamp", "x"]), scalars, max_size=4),
)
messages = st.fixed_dictionaries(
    {"telemetry": st.dictionaries(st.sampled_from(["t", "u", "mode", "k.1", "bad key", ""]), items)},
    optional={
        "timestamp": st.one_of(scalars, st.just("2026-06-01T11:00:00+02:00"), st.just(1780315200000)),
        "metadata": st.one_of(
            scalars, st.dictionaries(st.sampled_from(["quality", "source"]), scalars, max_size=2)
        ),
        "device_id": st.one_of(scalars, st.just("DEVICE")),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=messages)
def test_fast_path_agrees_with_full_path(
    validator_and_device: tuple[Validator, uuid.UUID], body: dict[str, Any]
) -> None:
    validator, device = validator_and_device
    if body.get("device_id") == "DEVICE":
        body["device_id"] = str(device)
    try:
        payload = orjson.dumps(body)
    except TypeError:  # integers beyond 64 bits: not JSON orjson writes; the codec test covers them
        return
    check(validator, device, payload)


def test_parse_publish_qos_and_properties() -> None:
    topic = b"insa/devices/x/telemetry"
    body = len(topic).to_bytes(2, "big") + topic + (7).to_bytes(2, "big") + b"\x03\x01\x01\x00" + b"42"
    assert parse_publish(0x32, body) == (topic, 7, b"42")  # QoS 1, MQTT 5 properties skipped
    body0 = len(topic).to_bytes(2, "big") + topic + b"\x00" + b"{}"
    assert parse_publish(0x30, body0) == (topic, 0, b"{}")
    body311 = len(topic).to_bytes(2, "big") + topic + (9).to_bytes(2, "big") + b"1.5"
    assert parse_publish(0x32, body311, v5=False) == (topic, 9, b"1.5")


def test_copy_encoder_round_trips_through_postgres(engine: Engine) -> None:
    """Rows encoded by CopyEncoder read back equal, including the rare shapes (text, metadata, NULLs)."""
    import psycopg

    from ingest.copy_binary import COPY_ORDER
    from workbench.db.engine import libpq_url

    device = uuid.uuid4()
    stamp = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    text = str(device)
    rows: list[Row] = [
        (stamp, device, "t", 1.25, "°C", 100, None, None, text),
        (stamp, device, "t", -0.0, None, 0, None, None, text),
        (stamp, device, "mode", None, None, 50, None, "auto ✓", text),
        (stamp, device, "m", 2.0, "bar", 99, b"\x01" + orjson.dumps({"source": "x"}), None, text),
    ]
    url = libpq_url(str(engine.url.render_as_string(hide_password=False)))
    with psycopg.connect(url) as conn:
        conn.execute(
            "CREATE TEMP TABLE enc (device_id uuid, key varchar, unit varchar, timestamp timestamptz, "
            "value float8, quality int4, metadata jsonb, text_value text)"
        )
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY enc ({', '.join(COPY_ORDER)}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.write(CopyEncoder().encode(rows))
        back = conn.execute(
            "SELECT timestamp, device_id, key, value, unit, quality, metadata, text_value FROM enc"
        ).fetchall()
    assert [tuple(r) for r in back] == [
        (stamp, device, "t", 1.25, "°C", 100, None, None),
        (stamp, device, "t", -0.0, None, 0, None, None),
        (stamp, device, "mode", None, None, 50, None, "auto ✓"),
        (stamp, device, "m", 2.0, "bar", 99, {"source": "x"}, None),
    ]


points = st.fixed_dictionaries(
    {"key": st.sampled_from(["t", "u", "mode", "bad key", "k:1"])},
    optional={
        "value": scalars,
        "timestamp": st.one_of(scalars, st.just(1780315200), st.just("2026-06-01T11:00:00Z")),
        "unit": st.one_of(scalars, st.just("°C")),
        "quality": scalars,
        "metadata": st.one_of(scalars, st.just({"a": 1})),
        "telemetry": st.just({"t": 1}),
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=points)
def test_fast_point_agrees_with_full_path(
    validator_and_device: tuple[Validator, uuid.UUID], item: dict[str, Any]
) -> None:
    from ingest.codecs import document_readings

    validator, device = validator_and_device
    fast = FastRows(validator, NOW)
    if not fast.point(item, str(device)):
        assert fast.rows == []
        return
    result = validator.validate(document_readings([item], str(device)), NOW)
    assert result.rejected == []
    assert fast.rows == result.rows
