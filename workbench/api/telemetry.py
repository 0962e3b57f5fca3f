"""``/api/v1/telemetry`` queries: raw ranges, latest values, aggregates, chart series, exports.

(Writing telemetry, ``POST /api/v1/telemetry``, belongs to ingest.)
"""

from __future__ import annotations

import functools
import uuid
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
from flask import Response, jsonify, stream_with_context
from sqlalchemy import ColumnElement, select

from workbench.api.common import Strict, Timestamp, check_range, make_blueprint, query_args
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.db import series
from workbench.db.tables import latest_values, telemetry
from workbench.platform import current_platform

blp = make_blueprint("telemetry_query", "/telemetry", "Telemetry queries, aggregates, chart series, exports")

# No control characters (NUL above all: PostgreSQL refuses it, which a streamed export would hit mid-answer).
_KEY = ma.fields.String(
    validate=[
        ma.validate.Length(min=1, max=100),
        ma.validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters"),
    ]
)
MAX_RAW_PAGE = 10_000
DEFAULT_WINDOW = timedelta(hours=1)


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone(value: str) -> bool:
    return value in _zones()


class RangeArgs(Strict):
    """One device, optional keys, a time range (default: the last hour)."""

    device_id = ma.fields.UUID(required=True)
    keys = ma.fields.List(_KEY, validate=ma.validate.Length(max=50))
    start = Timestamp(metadata={"description": "inclusive; default end - 1 hour"})
    end = Timestamp(metadata={"description": "exclusive; default now"})


class RawArgs(RangeArgs):
    """Raw points, paged newest first unless ``order=asc``."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    page_size = ma.fields.Integer(load_default=1000, validate=ma.validate.Range(min=1, max=MAX_RAW_PAGE))
    order = ma.fields.String(load_default="desc", validate=ma.validate.OneOf(("asc", "desc")))


class PointSchema(ma.Schema):
    """One stored reading."""

    timestamp = ma.fields.DateTime(required=True)
    device_id = ma.fields.UUID(required=True)
    key = ma.fields.String(required=True)
    value = ma.fields.Float(allow_none=True)
    text_value = ma.fields.String(allow_none=True)
    unit = ma.fields.String(allow_none=True)
    quality = ma.fields.Integer(allow_none=True)
    metadata = ma.fields.Dict(
        allow_none=True, metadata={"description": "what came with the reading (the message's source, ...)"}
    )


class RawPageSchema(ma.Schema):
    """A page of raw readings."""

    items = ma.fields.List(ma.fields.Nested(PointSchema), required=True)
    page = ma.fields.Integer(required=True)
    page_size = ma.fields.Integer(required=True)
    has_more = ma.fields.Boolean(required=True)


class LatestArgs(Strict):
    """Latest values of some devices (all visible ones when none given) and keys."""

    device_id = ma.fields.List(ma.fields.UUID(), validate=ma.validate.Length(max=1000))
    keys = ma.fields.List(_KEY, validate=ma.validate.Length(max=100))
    limit = ma.fields.Integer(load_default=10_000, validate=ma.validate.Range(min=1, max=100_000))


class LatestItemSchema(PointSchema):
    """One latest value."""


class LatestListSchema(ma.Schema):
    """Latest values, by device and key."""

    items = ma.fields.List(ma.fields.Nested(LatestItemSchema), required=True)


class AggregateArgs(Strict):
    """Buckets over a range: fixed (``1m``, ``15m``, ``1h``) or calendar in a zone (``day``, ``month``)."""

    device_id = ma.fields.UUID(required=True)
    keys = ma.fields.List(_KEY, required=True, validate=ma.validate.Length(min=1, max=20))
    start = Timestamp(required=True)
    end = Timestamp(required=True)
    interval = ma.fields.String(load_default="1h", validate=ma.validate.Length(min=1, max=30))
    functions = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(tuple(series.FUNCTIONS))),
        load_default=lambda: ["avg"],
        validate=ma.validate.Length(min=1, max=len(series.FUNCTIONS)),
    )
    timezone = ma.fields.String(load_default="UTC", validate=ma.validate.Length(min=1, max=64))


class BucketSchema(ma.Schema):
    """One bucket of one key."""

    key = ma.fields.String(required=True)
    bucket = ma.fields.DateTime(required=True, metadata={"description": "bucket start, in the zone"})
    values = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Float(allow_none=True), required=True)


class AggregateSchema(ma.Schema):
    """Aggregated buckets."""

    device_id = ma.fields.UUID(required=True)
    interval = ma.fields.String(required=True)
    timezone = ma.fields.String(required=True)
    functions = ma.fields.List(ma.fields.String(), required=True)
    items = ma.fields.List(ma.fields.Nested(BucketSchema), required=True)


class DownsampleArgs(Strict):
    """A chart series of one key: at most ``points`` points keeping the shape (MinMaxLTTB)."""

    device_id = ma.fields.UUID(required=True)
    key = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100))
    start = Timestamp(required=True)
    end = Timestamp(required=True)
    points = ma.fields.Integer(load_default=1000, validate=ma.validate.Range(min=3, max=20_000))


class SeriesSchema(ma.Schema):
    """A chart series: parallel arrays of times and values."""

    device_id = ma.fields.UUID(required=True)
    key = ma.fields.String(required=True)
    timestamps = ma.fields.List(ma.fields.DateTime(), required=True)
    values = ma.fields.List(ma.fields.Float(), required=True)


class ExportArgs(Strict):
    """An export of any range of one device as CSV or Parquet (streamed)."""

    device_id = ma.fields.UUID(required=True)
    keys = ma.fields.List(_KEY, validate=ma.validate.Length(max=100))
    start = Timestamp(required=True)
    end = Timestamp(required=True)
    format = ma.fields.String(load_default="csv", validate=ma.validate.OneOf(("csv", "parquet")))


def _own(device_id: uuid.UUID) -> None:
    # Device keys read only their own device (users' roles decide for them).
    if not current_principal().may_touch_device(device_id):
        raise ApiError(403, "forbidden", "a device key reaches only its own device")


def _range(args: dict[str, Any]) -> tuple[datetime, datetime]:
    end = args.get("end") or datetime.now(UTC)
    start = args.get("start") or end - DEFAULT_WINDOW
    check_range(start, end)
    return start, end


def _series_error(error: series.SeriesError) -> ApiError:
    return ApiError(400, "bad_request", str(error), {"fields": {error.field: [str(error)]}})


@blp.route("", methods=["GET"])
@require("telemetry:read")
@query_args(blp, RawArgs)
@blp.response(200, RawPageSchema)
def raw(args: dict[str, Any]) -> dict[str, Any]:
    """Raw readings of a device (optionally some keys) over a time range, paged."""
    _own(args["device_id"])
    start, end = _range(args)
    where: list[ColumnElement[bool]] = [telemetry.c.device_id == args["device_id"]]
    where.append(telemetry.c.timestamp >= start)
    where.append(telemetry.c.timestamp < end)
    if args.get("keys"):
        where.append(telemetry.c.key.in_(args["keys"]))
    order = telemetry.c.timestamp.asc() if args["order"] == "asc" else telemetry.c.timestamp.desc()
    size = args["page_size"]
    query = (
        select(*(telemetry.c[name] for name in series.EXPORT_COLUMNS), telemetry.c.metadata)
        .where(*where)
        .order_by(order, telemetry.c.key)
        .limit(size + 1)
        .offset((args["page"] - 1) * size)
    )
    with current_platform().read_engine().connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    return {"items": rows[:size], "page": args["page"], "page_size": size, "has_more": len(rows) > size}


@blp.route("/latest", methods=["GET"])
@require("telemetry:read")
@query_args(blp, LatestArgs)
@blp.response(200, LatestListSchema)
def latest(args: dict[str, Any]) -> dict[str, Any]:
    """The newest value of each device and key (kept by ingest in ``latest_values``)."""
    where: list[ColumnElement[bool]] = []
    principal = current_principal()
    if args.get("device_id"):
        for device_id in args["device_id"]:
            _own(device_id)
        where.append(latest_values.c.device_id.in_(args["device_id"]))
    elif principal.is_device:
        where.append(latest_values.c.device_id == principal.device_id)
    if args.get("keys"):
        where.append(latest_values.c.key.in_(args["keys"]))
    query = (
        select(latest_values)
        .where(*where)
        .order_by(latest_values.c.device_id, latest_values.c.key)
        .limit(args["limit"])
    )
    with current_platform().read_engine().connect() as conn:
        return {"items": [dict(r._mapping) for r in conn.execute(query)]}


@blp.route("/aggregate", methods=["GET"])
@require("telemetry:read")
@query_args(blp, AggregateArgs)
@blp.response(200, AggregateSchema)
def aggregate(args: dict[str, Any]) -> Response:
    """avg/min/max/sum/count/stddev/first/last per bucket; calendar buckets follow the zone's days."""
    _own(args["device_id"])
    check_range(args["start"], args["end"])
    if not _zone(args["timezone"]):
        raise ApiError(400, "bad_request", "unknown time zone", {"fields": {"timezone": ["unknown"]}})
    try:
        step = series.parse_interval(args["interval"])
        items = series.aggregate(
            current_platform().read_engine(),
            args["device_id"],
            args["keys"],
            args["start"],
            args["end"],
            step,
            list(dict.fromkeys(args["functions"])),
            args["timezone"],
        )
    except series.SeriesError as error:
        raise _series_error(error) from None
    # Serialised here, in AggregateSchema's shape: marshmallow's per-field dump of a day of minute
    # buckets cost two thirds of the request.
    return jsonify(
        {
            "device_id": str(args["device_id"]),
            "interval": args["interval"],
            "timezone": args["timezone"],
            "functions": list(dict.fromkeys(args["functions"])),
            "items": [
                {"key": item["key"], "bucket": item["bucket"].isoformat(), "values": item["values"]}
                for item in items
            ],
        }
    )


@blp.route("/downsample", methods=["GET"])
@require("telemetry:read")
@query_args(blp, DownsampleArgs)
@blp.response(200, SeriesSchema)
def downsample(args: dict[str, Any]) -> dict[str, Any]:
    """A chart-ready series of at most ``points`` points (LTTB over per-bucket min/max)."""
    _own(args["device_id"])
    check_range(args["start"], args["end"])
    engine = current_platform().read_engine()
    points = series.downsample(
        engine, args["device_id"], args["key"], args["start"], args["end"], args["points"]
    )
    return {
        "device_id": args["device_id"],
        "key": args["key"],
        "timestamps": [t for t, _ in points],
        "values": [v for _, v in points],
    }


_EXPORT_DOC = {
    "responses": {
        "200": {
            "description": "The readings, streamed",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    }
}


@blp.route("/export", methods=["GET"])
@require("telemetry:read")
@query_args(blp, ExportArgs)
@blp.doc(**_EXPORT_DOC)
def export(args: dict[str, Any]) -> Response:
    """Every reading of a range as CSV or Parquet, streamed from a server-side cursor."""
    _own(args["device_id"])
    check_range(args["start"], args["end"])
    engine = current_platform().read_engine()
    rows = (args["device_id"], args.get("keys"), args["start"], args["end"])
    name = f"telemetry-{args['device_id']}.{args['format']}"
    if args["format"] == "parquet":
        body, mimetype = series.export_parquet(engine, *rows), "application/vnd.apache.parquet"
    else:
        body, mimetype = series.export_csv(engine, *rows), "text/csv"
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
