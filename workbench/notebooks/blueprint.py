"""``/api/v1/notebook-runs``: executed notebooks, listed (by rule, report, status) and one by one as JSON
(status, parameters, alerts, records) or HTML."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import Response
from sqlalchemy import select

from workbench.api.common import PageArgs, PageSchema, Strict, fetch_page, make_blueprint, query_args
from workbench.api.errors import ApiError
from workbench.auth.guard import require
from workbench.db.tables import alerts, notebook_runs
from workbench.notebooks.render import content_security_policy, render_html
from workbench.platform import current_platform

blp = make_blueprint("notebook_runs", "/notebook-runs", "Executed notebooks: rule and report evidence")


class NotebookRunSchema(ma.Schema):
    """One notebook execution."""

    id = ma.fields.UUID(required=True)
    notebook = ma.fields.String(required=True)
    rule_id = ma.fields.UUID(allow_none=True)
    report_id = ma.fields.UUID(allow_none=True)
    parameters = ma.fields.Dict(required=True)
    status = ma.fields.String(required=True, metadata={"description": "running, ok, failed or timeout"})
    error = ma.fields.String(allow_none=True, metadata={"description": "names the failing cell"})
    records = ma.fields.Dict(allow_none=True, metadata={"description": "records, alerts (and dry_run)"})
    duration_ms = ma.fields.Float(allow_none=True)
    notebook_hash = ma.fields.String(allow_none=True, metadata={"description": "SHA-256 of the notebook"})
    started_at = ma.fields.AwareDateTime(required=True)
    finished_at = ma.fields.AwareDateTime(allow_none=True)
    alert_ids = ma.fields.List(ma.fields.UUID(), metadata={"description": "alerts this run raised"})
    html_url = ma.fields.String(required=True)


class NotebookRunItemSchema(NotebookRunSchema):
    """One notebook execution in a list (its alerts are on the run itself)."""

    class Meta:
        exclude = ("alert_ids",)


class NotebookRunListArgs(PageArgs):
    """Filters of the run list."""

    rule_id = ma.fields.UUID()
    report_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(("running", "ok", "failed", "timeout")))


class NotebookRunPageSchema(PageSchema):
    """A page of notebook runs, newest first."""

    items = ma.fields.List(ma.fields.Nested(NotebookRunItemSchema), required=True)


class HtmlArgs(Strict):
    """Rendering options."""

    hide_code = ma.fields.Boolean(load_default=False, metadata={"description": "outputs only"})


def _row(run_id: uuid.UUID) -> dict[str, Any]:
    platform = current_platform()
    with platform.engine.connect() as conn:
        row = conn.execute(select(notebook_runs).where(notebook_runs.c.id == run_id)).first()
        if row is None:
            raise ApiError(404, "not_found", f"no notebook run {run_id}")
        linked = conn.execute(select(alerts.c.id).where(alerts.c.notebook_run_id == run_id)).scalars()
        data = dict(row._mapping)
        data["alert_ids"] = list(linked)
    return data


@blp.route("", methods=["GET"])
@require("notebooks:read")
@query_args(blp, NotebookRunListArgs)
@blp.response(200, NotebookRunPageSchema)
def list_runs(args: dict[str, Any]) -> dict[str, Any]:
    """Notebook runs, newest first: a rule's evaluations and backtests (``records.dry_run``), a report's
    renders, or the failed ones."""
    where = [
        getattr(notebook_runs.c, name) == args[name]
        for name in ("rule_id", "report_id", "status")
        if args.get(name) is not None
    ]
    page = fetch_page(notebook_runs, where, [notebook_runs.c.started_at.desc(), notebook_runs.c.id], args)
    for item in page["items"]:
        item["html_url"] = f"/api/v1/notebook-runs/{item['id']}/html"
    return page


@blp.route("/<uuid:run_id>", methods=["GET"])
@require("notebooks:read")
@blp.response(200, NotebookRunSchema)
def get_run(run_id: uuid.UUID) -> dict[str, Any]:
    """One notebook run: status, parameters, error (naming the failing cell), alerts and records."""
    data = _row(run_id)
    data["html_url"] = f"/api/v1/notebook-runs/{run_id}/html"
    return data


@blp.route("/<uuid:run_id>/html", methods=["GET"])
@require("notebooks:read")
@query_args(blp, HtmlArgs)
@blp.doc(responses={"200": {"description": "the executed notebook as an HTML page"}})
def get_run_html(args: dict[str, Any], run_id: uuid.UUID) -> Response:
    """The executed notebook rendered as HTML (``hide_code=true`` shows outputs only)."""
    data = _row(run_id)
    runs = (Path(current_platform().settings.data_dir) / "runs").resolve()
    path = Path(data["output_path"] or "").resolve() if data["output_path"] else None
    if path is None or not path.is_relative_to(runs) or not path.is_file():
        raise ApiError(404, "not_found", f"notebook run {run_id} kept no executed notebook")
    html = render_html(path, hide_code=args["hide_code"])
    # Its own policy (set before the API's default-src 'none' would be): styled, and nothing else admitted.
    return Response(
        html, mimetype="text/html", headers={"Content-Security-Policy": content_security_policy(html)}
    )
