"""``/api/v1/reports``: run reports (excel, pdf, zip, any registered format), the archive, schedules."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Response, send_file, url_for

from workbench.api.common import (
    PageArgs,
    PageSchema,
    Strict,
    fetch_page,
    make_blueprint,
    not_found,
    query_args,
    row_schema,
)
from workbench.api.errors import ApiError
from workbench.auth.guard import current_principal, require
from workbench.db.tables import report_schedules, reports
from workbench.platform import current_platform
from workbench.reports import formats
from workbench.reports.schedules import create_schedule, list_schedules, with_next_run
from workbench.reports.service import ReportRequestError, ReportService, service

blp = make_blueprint(
    "reports", "/reports", "Reports: notebooks rendered to PDF, Excel, ZIP; the archive; schedules"
)


class RunSchema(Strict):
    """A report to run now."""

    notebook = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=255),
        metadata={"description": "report notebook in reports/"},
    )
    parameters = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=dict,
        metadata={"description": "start, end (ISO 8601 or now/today±Nd), timezone, devices, area, ..."},
    )
    wait = ma.fields.Boolean(
        load_default=False, metadata={"description": "render before answering (small reports)"}
    )


ReportSchema = row_schema(
    reports,
    "ReportSchema",
    "A report in the archive: parameters, status, progress, provenance and where to download it.",
    exclude=("path",),
    status=ma.fields.String(required=True, metadata={"description": "queued, running, done or failed"}),
    download_url=ma.fields.String(allow_none=True),
    url=ma.fields.String(required=True),
)


class ListArgs(PageArgs):
    """Paging and filters of the archive."""

    notebook = ma.fields.String()
    status = ma.fields.String(validate=ma.validate.OneOf(["queued", "running", "done", "failed"]))


class ReportPageSchema(PageSchema):
    """A page of the archive."""

    items = ma.fields.List(ma.fields.Nested(ReportSchema), required=True)


class ScheduleCreateSchema(Strict):
    """A report to render on a cron schedule and e-mail."""

    name = ma.fields.String(validate=ma.validate.Length(min=1, max=255))
    notebook = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=255))
    format = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=10))
    cron = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=100),
        metadata={"description": "five-field cron, e.g. '0 6 * * *'"},
    )
    timezone = ma.fields.String(
        load_default="UTC",
        validate=ma.validate.Length(min=1, max=64),
        metadata={"description": "IANA zone of the cron"},
    )
    parameters = ma.fields.Dict(keys=ma.fields.String(), load_default=dict)
    recipients = ma.fields.List(ma.fields.Email(), load_default=list, validate=ma.validate.Length(max=100))


ScheduleSchema = row_schema(
    report_schedules,
    "ScheduleSchema",
    "A report schedule.",
    recipients=ma.fields.List(ma.fields.String(), required=True),
    next_run=ma.fields.DateTime(required=True),
)


class ScheduleListSchema(ma.Schema):
    """Every report schedule."""

    items = ma.fields.List(ma.fields.Nested(ScheduleSchema), required=True)


class CatalogSchema(ma.Schema):
    """What can be run: report notebooks and formats with their option schemas."""

    notebooks = ma.fields.List(ma.fields.String(), required=True)
    formats = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(), required=True)


def _service() -> ReportService:
    return service(current_platform())


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    done = row["status"] == "done"
    return {
        **row,
        "url": url_for("reports.get_report", report_id=row["id"]),
        "download_url": url_for("reports.download_report", report_id=row["id"]) if done else None,
    }


@blp.route("/catalog", methods=["GET"])
@require("reports:read")
@blp.response(200, CatalogSchema)
def catalog() -> dict[str, Any]:
    """Report notebooks and formats that can be requested."""
    return {
        "notebooks": _service().notebooks(),
        "formats": {name: formats.get(name).configuration_schema() for name in formats.names()},
    }


@blp.route("/<string:format_name>", methods=["POST"])
@require("reports:generate")
@blp.doc(
    parameters=[
        {
            "in": "path",
            "name": "format_name",
            "required": True,
            "description": "a registered report format",
            "schema": {"type": "string", "enum": formats.names()},
        }
    ]
)
@blp.arguments(RunSchema)
@blp.response(202, ReportSchema)
@blp.alt_response(201, schema=ReportSchema, description="rendered before answering (`wait`)")
def run_report(body: dict[str, Any], format_name: str) -> tuple[dict[str, Any], int]:
    """Run a report notebook into ``excel``, ``pdf``, ``zip`` (or any registered format).

    Answers 202 at once with the report's id and URL (poll it for ``progress``; a ``report.progress``
    event is published too), or 201 with the finished report when ``wait`` is true."""
    reports_service = _service()
    if format_name not in formats.names():
        raise ApiError(404, "not_found", f"no report format {format_name!r}", {"formats": formats.names()})
    try:
        report_id = reports_service.request(
            body["notebook"], format_name, body["parameters"], requested_by=_requester()
        )
    except ReportRequestError as error:
        raise ApiError(400, "bad_report_request", str(error)) from None
    if body["wait"]:
        return _shape(reports_service.run(report_id)), 201
    reports_service.submit(report_id)
    row = reports_service.get(report_id)
    assert row is not None
    return _shape(row), 202


@blp.route("", methods=["GET"])
@require("reports:read")
@query_args(blp, ListArgs)
@blp.response(200, ReportPageSchema)
def list_reports(args: dict[str, Any]) -> dict[str, Any]:
    """The archive, newest first."""
    where = []
    if "notebook" in args:
        where.append(reports.c.notebook == args["notebook"])
    if "status" in args:
        where.append(reports.c.status == args["status"])
    page = fetch_page(reports, where, [reports.c.created_at.desc(), reports.c.id], args)
    return {**page, "items": [_shape(row) for row in page["items"]]}


@blp.route("/<uuid:report_id>", methods=["GET"])
@require("reports:read")
@blp.response(200, ReportSchema)
def get_report(report_id: uuid.UUID) -> dict[str, Any]:
    """One report: status, progress, provenance, download link when done."""
    return _shape(_load(report_id))


@blp.route("/<uuid:report_id>/download", methods=["GET"])
@require("reports:read")
@blp.response(200, description="the report file")
def download_report(report_id: uuid.UUID) -> Response:
    """The report's file (PDF, workbook, archive...)."""
    row = _load(report_id)
    if row["status"] != "done" or not row["path"]:
        raise ApiError(
            409, "report_not_ready", f"report {report_id} is {row['status']}", {"error": row["error"]}
        )
    path = Path(row["path"])
    if not path.is_file():
        raise ApiError(410, "report_gone", f"the file of report {report_id} is no longer in the archive")
    fmt = formats.get(row["format"])
    return send_file(
        path, mimetype=fmt.media_type, as_attachment=True, download_name=f"{row['notebook']}{path.suffix}"
    )


@blp.route("/scheduled", methods=["GET"])
@require("reports:read")
@blp.response(200, ScheduleListSchema)
def scheduled() -> dict[str, Any]:
    """Every report schedule with its next run."""
    return {"items": [with_next_run(row) for row in list_schedules(_service())]}


@blp.route("/schedule", methods=["POST"])
@require("reports:generate")
@blp.arguments(ScheduleCreateSchema)
@blp.response(201, ScheduleSchema)
def schedule(body: dict[str, Any]) -> dict[str, Any]:
    """Render a report on a cron schedule (in a timezone), archive it and e-mail it to the recipients."""
    try:
        row = create_schedule(
            _service(),
            name=body.get("name") or f"{body['notebook']} ({body['format']}, {body['cron']})"[:255],
            notebook=body["notebook"],
            format_name=body["format"],
            cron=body["cron"],
            timezone=body["timezone"],
            parameters=body["parameters"],
            recipients=body["recipients"],
            created_by=_requester(),
        )
    except ReportRequestError as error:
        raise ApiError(400, "bad_schedule", str(error)) from None
    return with_next_run(row)


def _load(report_id: uuid.UUID) -> dict[str, Any]:
    row = _service().get(report_id)
    if row is None:
        raise not_found("report", report_id)
    return row


def _requester() -> uuid.UUID | None:
    principal = current_principal()
    return principal.id if principal.kind == "user" else None
