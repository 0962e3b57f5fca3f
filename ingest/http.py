"""HTTP ingest: ``POST /api/v1/telemetry``, bulk import, and the quarantine endpoints."""

from __future__ import annotations

import threading
import time
from typing import Any

import marshmallow as ma
import orjson
from flask import request
from flask_smorest import Blueprint

from ingest import quarantine as quarantine_store
from ingest.bulk import Gate, run_import
from ingest.codecs import DecodeError, document_readings
from ingest.fastpath import FastRows
from ingest.pipeline import Backpressure, MessageReject, Pipeline
from ingest.points import Reading
from ingest.validation import Rejected, canonical_device
from workbench import quarantine as quarantine_service
from workbench.api.errors import ApiError, database_unavailable
from workbench.api.protection import bounded_body, charge_points
from workbench.auth.guard import current_principal, require
from workbench.auth.principal import Principal
from workbench.platform import Platform, current_platform

blp = Blueprint("ingest", __name__, url_prefix="/api/v1", description="Telemetry ingest and quarantine")

COMMIT_TIMEOUT = 30.0
# Below this many points per request the fast path's set-up is not worth it.
FAST_MIN_POINTS = 8
QUEUE_TIMEOUT = 10.0
# A writer that lost its connection reconnects within this many seconds when the database is up.
DOWN_GRACE = 1.0
# A device key's import is charged against its points budget this many points at a time.
IMPORT_CHARGE = 1000
_lock = threading.Lock()

# A reading's value: a number, a boolean (stored 1/0), text (for declared text keys) or null (quarantined).
_SCALARS: list[dict[str, Any]] = [{"type": "number"}, {"type": "boolean"}, {"type": "string"}]
_VALUE = {"oneOf": _SCALARS, "nullable": True}
_TIME = {
    "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
    "description": "ISO 8601, or Unix epoch seconds/milliseconds; default: when received",
}


class TelemetryPointSchema(ma.Schema):
    """One reading: ``{device_id?, key, value, timestamp?, unit?, quality?, metadata?}``."""

    device_id = ma.fields.String(metadata={"format": "uuid", "description": "optional with a device key"})
    key = ma.fields.String(required=True, metadata={"pattern": "^[A-Za-z0-9_][A-Za-z0-9_.:\\-]{0,99}$"})
    value = ma.fields.Raw(required=True, allow_none=True, metadata=_VALUE)
    timestamp = ma.fields.Raw(metadata=_TIME)
    unit = ma.fields.String(allow_none=True, metadata={"maxLength": 20})
    quality = ma.fields.Integer(allow_none=True, metadata={"minimum": 0, "maximum": 100})
    metadata = ma.fields.Dict(keys=ma.fields.String(), allow_none=True)


class MessageMetadataSchema(ma.Schema):
    """The design's message metadata: quality for every reading, source and anything else kept with them."""

    class Meta:
        unknown = ma.INCLUDE

    quality = ma.fields.Integer(metadata={"minimum": 0, "maximum": 100})
    source = ma.fields.String(metadata={"description": "kept as each reading's metadata.source"})


_TELEMETRY_ITEM = {
    "oneOf": [
        *_SCALARS,
        {
            "type": "object",
            "required": ["value"],
            "properties": {
                "value": _VALUE,
                "unit": {"type": "string", "maxLength": 20},
                "timestamp": _TIME,
                "quality": {"type": "integer", "minimum": 0, "maximum": 100},
            },
        },
    ]
}


class TelemetryMessageSchema(ma.Schema):
    """The design's message: ``{device_id?, timestamp?, telemetry: {key: {value, unit}}, metadata?}``."""

    device_id = ma.fields.String(metadata={"format": "uuid", "description": "optional with a device key"})
    timestamp = ma.fields.Raw(metadata=_TIME)
    telemetry = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Raw(metadata=_TELEMETRY_ITEM), required=True
    )
    metadata = ma.fields.Nested(MessageMetadataSchema)


_ONE = {"oneOf": [TelemetryPointSchema, TelemetryMessageSchema]}
POINT_DOC = {
    "description": "One point `{device_id, key, value, timestamp?, unit?, quality?}`, the design's message "
    "`{device_id, timestamp, telemetry: {key: {value, unit}}, metadata: {quality, source}}`, or a JSON "
    "array of either. A device key may omit `device_id` and may write only its own device. At most "
    "`WORKBENCH_INGEST_MAX_BODY_BYTES` (413 beyond); a device key's points count against its hourly budget.",
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    TelemetryPointSchema,
                    TelemetryMessageSchema,
                    {"type": "array", "items": _ONE, "minItems": 1},
                ]
            }
        }
    },
}
IMPORT_DOC = {
    "description": "History, streamed: CSV with a header (timestamp, device_id, key, value, unit, quality) "
    "or NDJSON (one point or message per line). Up to `WORKBENCH_INGEST_IMPORT_MAX_BYTES`.",
    "required": True,
    "content": {
        "text/csv": {"schema": {"type": "string", "format": "binary"}},
        "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
        # Generic clients (openapi-python-client) upload files as octet-stream; ``format`` then says which.
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
IMPORT_FORMAT = {
    "in": "query",
    "name": "format",
    "description": "csv or ndjson; default: from the Content-Type (ndjson unless it names csv)",
    "schema": {"type": "string", "enum": ["csv", "ndjson"]},
}


class RejectionSchema(ma.Schema):
    """One rejected point and why."""

    index = ma.fields.Integer(metadata={"description": "position in the request (single requests)"})
    line = ma.fields.Integer(metadata={"description": "line of the import (imports)"})
    reason = ma.fields.String(required=True)


class IngestResultSchema(ma.Schema):
    """How many points were accepted (committed) and rejected (quarantined), and why."""

    accepted = ma.fields.Integer(required=True)
    rejected = ma.fields.Integer(required=True)
    errors = ma.fields.List(ma.fields.Nested(RejectionSchema), required=True)
    lines = ma.fields.Integer()


class QuarantineArgs(ma.Schema):
    """Filters of the quarantine list."""

    device_id = ma.fields.String()
    reason = ma.fields.String(metadata={"description": "part of the reason, any case"})
    source = ma.fields.String()
    include_replayed = ma.fields.Boolean(load_default=False)
    limit = ma.fields.Integer(load_default=100, validate=ma.validate.Range(min=1, max=1000))
    before_id = ma.fields.Integer(metadata={"description": "page: items with a smaller id"})


class QuarantineItemSchema(ma.Schema):
    """One quarantined message or point."""

    id = ma.fields.Integer(required=True)
    received_at = ma.fields.DateTime(required=True)
    source = ma.fields.String(required=True)
    topic = ma.fields.String(allow_none=True)
    device_id = ma.fields.String(allow_none=True)
    reason = ma.fields.String(required=True)
    payload = ma.fields.String(required=True)
    replayed_at = ma.fields.DateTime(allow_none=True)


class QuarantineListSchema(ma.Schema):
    """A page of quarantined items, newest first."""

    items = ma.fields.List(ma.fields.Nested(QuarantineItemSchema), required=True)


class ReplayArgs(ma.Schema):
    """What to replay: ids, or every item of a device, or everything (up to 10,000 at once)."""

    ids = ma.fields.List(ma.fields.Integer(), validate=ma.validate.Length(max=quarantine_service.MAX_REPLAY))
    device_id = ma.fields.String()
    all = ma.fields.Boolean(load_default=False)


class ReplayResultSchema(ma.Schema):
    """Replay outcome."""

    replayed = ma.fields.Integer(required=True)
    points = ma.fields.Integer(required=True)
    still_rejected = ma.fields.Integer(required=True)
    errors = ma.fields.List(ma.fields.Dict(), required=True)


def pipeline_of(platform: Platform) -> Pipeline:
    """The platform's pipeline: the in-process ingest service's, else one started for HTTP on first use."""
    with _lock:
        pipeline = platform.services.pipeline
        if pipeline is None:
            pipeline = Pipeline(platform.settings, platform.engine, platform.bus)
            pipeline.start()
            platform.services.pipeline = pipeline
            platform.health.register("ingest_http", pipeline.health)
    assert isinstance(pipeline, Pipeline)
    return pipeline


def _writer_down(pipeline: Pipeline) -> bool:
    """Whether the writer has failed to reach the database for longer than a reconnect takes."""
    since = pipeline.writer.down_since
    return since is not None and time.monotonic() - since > DOWN_GRACE


def _refuse_while_down(pipeline: Pipeline) -> None:
    """503 at once while the writer cannot reach the database, instead of queueing behind it."""
    if _writer_down(pipeline):
        raise database_unavailable("the database is unavailable; nothing was stored, send again later")


def _wait_committed(pipeline: Pipeline, done: threading.Event) -> None:
    """Wait for the commit; 503 as soon as the database is down or after COMMIT_TIMEOUT."""
    deadline = time.monotonic() + COMMIT_TIMEOUT
    while not done.wait(0.05):
        if _writer_down(pipeline) or time.monotonic() > deadline:
            # The writer keeps the points and commits them when the database answers: a client that
            # sends them again may store them twice (at least once, as over MQTT).
            raise database_unavailable("points queued but not committed (database slow or down); send again")


def _gate(principal: Principal) -> Any:
    """A check that a device key only writes its own device (users with the permission write any)."""

    if not principal.is_device:
        return lambda reading: None
    own = str(principal.device_id)  # once: a batch asks for every one of its points

    def gate(reading: Reading) -> str | None:
        device_id = reading.device_id
        if device_id is None:
            reading.device_id = own
            return None
        if device_id == own:
            return None
        try:
            device = canonical_device(device_id)
        except Rejected:
            device = str(device_id)
        if device != own:
            return f"device key of {own} may not write device {device[:60]!r}"
        return None

    return gate


def _charged(gate: Gate, principal: Principal, per_unit: int) -> Gate:
    """The gate, charging a device key's points budget IMPORT_CHARGE points ahead (429 once spent)."""
    if not principal.is_device:
        return gate
    seen = [0]

    def charged(reading: Reading) -> str | None:
        if seen[0] % IMPORT_CHARGE == 0:
            try:
                charge_points(principal, IMPORT_CHARGE, per_unit)
            except ApiError as error:
                error.message += f" (import stopped after {seen[0]} points; those were submitted)"
                raise
        seen[0] += 1
        return gate(reading)

    return charged


def _fast_points(
    pipeline: Pipeline, body: Any, principal: Principal, default: str | None
) -> tuple[FastRows | None, list[int]]:
    """The fast path for a JSON array of plain points: rows for the common ones, and the positions of
    the others (the full path explains them); (None, []) when the body is not such an array."""
    if type(body) is not list or len(body) < FAST_MIN_POINTS:
        return None, []
    fast = FastRows(pipeline.validator)
    own = default if principal.is_device else None
    rest: list[int] = []
    for index, item in enumerate(body):
        if type(item) is dict and "telemetry" in item:
            return None, []  # messages expand into several readings: keep the full path's numbering
        device = item.get("device_id", default) if type(item) is dict else None
        if device is None:
            device = own
        elif own is not None and device != own:
            device = None  # another device: the full path's gate answers 403
        if device is None or not fast.point(item, device):
            rest.append(index)
    return fast, rest


@blp.route("/telemetry", methods=["POST"])
@require("telemetry:write")
@blp.doc(requestBody=POINT_DOC)
@blp.response(200, IngestResultSchema)
def post_telemetry() -> dict[str, Any]:
    """Ingest points; answers after they are committed, with accepted/rejected counts and reasons."""
    principal = current_principal()
    platform = current_platform()
    # The whole body is parsed in memory (about 20 times its size): its size is bounded (413 beyond).
    request.max_content_length = platform.settings.ingest_max_body_bytes
    pipeline = pipeline_of(platform)
    _refuse_while_down(pipeline)
    raw = bounded_body(cache=False)
    default = str(principal.device_id) if principal.is_device else None
    try:
        body = orjson.loads(raw)
        fast, positions = _fast_points(pipeline, body, principal, default)
        if fast is not None:
            body = [body[index] for index in positions]
        readings = document_readings(body, default) if fast is None or body else []
    except (orjson.JSONDecodeError, DecodeError) as error:
        done = threading.Event()
        pipeline.submit([], "http", done.set, rejects=[MessageReject(f"body: {error}", raw, None, default)])
        done.wait(COMMIT_TIMEOUT)
        raise ApiError(400, "bad_request", f"body not accepted (quarantined): {error}") from None
    gate = _gate(principal)
    for reading in readings:
        refusal = gate(reading)
        if refusal is not None:
            raise ApiError(403, "forbidden", refusal)
    charge_points(
        principal, len(readings) + (len(fast.rows) if fast else 0), platform.settings.ingest_key_points
    )
    done = threading.Event()
    try:
        rows = None if fast is None else fast.rows
        result = pipeline.submit(readings, "http", done.set, timeout=QUEUE_TIMEOUT, rows=rows)
    except Backpressure as error:
        raise database_unavailable(str(error)) from None
    _wait_committed(pipeline, done)
    if fast is not None:  # positions in the request, not in the part the full path saw
        result.rejected = [(positions[index], reason) for index, reason in result.rejected]
    errors = [{"index": index, "reason": reason} for index, reason in result.rejected[:1000]]
    return {"accepted": result.accepted, "rejected": len(result.rejected), "errors": errors}


@blp.route("/telemetry/import", methods=["POST"])
@require("telemetry:write")
@blp.doc(requestBody=IMPORT_DOC, parameters=[IMPORT_FORMAT])
@blp.response(200, IngestResultSchema)
def import_telemetry() -> dict[str, Any]:
    """Bulk import streamed CSV or NDJSON; answers when every accepted point is committed."""
    platform = current_platform()
    request.max_content_length = platform.settings.ingest_import_max_bytes  # streamed, never held
    fmt = (request.args.get("format") or "").lower()
    if not fmt:
        fmt = "csv" if "csv" in (request.mimetype or "") else "ndjson"
    if fmt not in ("csv", "ndjson"):
        raise ApiError(400, "bad_request", "format must be csv or ndjson")
    pipeline = pipeline_of(platform)
    _refuse_while_down(pipeline)
    principal = current_principal()
    gate = _charged(_gate(principal), principal, platform.settings.ingest_key_points)
    try:
        report = run_import(pipeline, request.stream, fmt, gate)
    except DecodeError as error:
        raise ApiError(400, "bad_request", str(error)) from None
    except TimeoutError as error:
        raise ApiError(503, "unavailable", str(error)) from None
    if report.lines == 0:
        raise ApiError(400, "bad_request", "the body holds no points: send CSV or NDJSON lines")
    return {
        "accepted": report.accepted,
        "rejected": report.rejected,
        "errors": report.errors,
        "lines": report.lines,
    }


@blp.route("/quarantine", methods=["GET"])
@require(quarantine_service.READ)
@blp.arguments(QuarantineArgs, location="query")
@blp.response(200, QuarantineListSchema)
def list_quarantine(args: dict[str, Any]) -> dict[str, Any]:
    """Rejected messages and points with their reason, newest first."""
    items = quarantine_service.list_items(
        current_platform().engine,
        current_principal(),
        args.get("device_id"),
        args.get("reason"),
        args.get("source"),
        args["include_replayed"],
        args["limit"],
        args.get("before_id"),
    )
    return {"items": items}


@blp.route("/quarantine/replay", methods=["POST"])
@require(quarantine_service.REPLAY)
@blp.arguments(ReplayArgs)
@blp.response(200, ReplayResultSchema)
def replay_quarantine(args: dict[str, Any]) -> dict[str, Any]:
    """Validate quarantined items again (after a fix); the now-valid ones are written and marked replayed."""
    return quarantine_service.replay(
        current_platform(), current_principal(), args.get("ids"), args.get("device_id"), args["all"]
    )


def connect_quarantine(platform: Platform) -> None:
    """Let the platform replay quarantined items through its pipeline (for the API and the UI alike)."""

    def replay(ids: list[int] | None, device_id: str | None) -> dict[str, Any]:
        return quarantine_store.replay(platform.engine, pipeline_of(platform), ids, device_id)

    platform.services.quarantine_replay = replay
