"""Reports: generate a report notebook with parameters, follow its progress, download it; schedules."""

from __future__ import annotations

import json
import uuid
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench.platform import current_platform
from workbench.reports import formats
from workbench.reports.schedules import create_schedule, list_schedules
from workbench.reports.service import ReportRequestError, service
from workbench.ui import timefmt
from workbench.ui.session import Forbidden, UiUser, require_user

PATH = "reports"
PERMISSION = "reports:read"  # the API permission behind this page
COLUMNS = [
    {"field": "created_at", "headerName": "Requested", "minWidth": 170, "sort": "desc"},
    {"field": "notebook", "minWidth": 160},
    {"field": "format", "width": 100},
    {"field": "status", "width": 110},
    {
        "field": "progress",
        "width": 110,
        "valueFormatter": {"function": "Math.round(params.value * 100) + '%'"},
    },
    {"field": "download", "cellRenderer": "markdown", "minWidth": 120},
    {"field": "error", "flex": 1},
]
SCHEDULE_COLUMNS = [{"field": f} for f in ("name", "notebook", "format", "cron", "timezone")] + [
    {"field": "next_run", "headerName": "Next run"}
]


def archive() -> list[dict[str, Any]]:
    """The newest reports with their progress and a download link when done."""
    rows, _ = service(current_platform()).archive(limit=50)
    out = []
    for row in rows:
        done = row["status"] == "done"
        out.append(
            {
                "id": str(row["id"]),
                "created_at": timefmt.show(row["created_at"]),
                "notebook": row["notebook"],
                "format": row["format"],
                "status": row["status"],
                "progress": row["progress"],
                "error": row.get("error"),
                "download": f"[download](/api/v1/reports/{row['id']}/download)" if done else "",
            }
        )
    return out


def schedules() -> list[dict[str, Any]]:
    """Report schedules for the grid."""
    return [
        {
            k: (timefmt.show(v) if hasattr(v, "isoformat") else v)
            for k, v in row.items()
            if k in ("name", "notebook", "format", "cron", "timezone", "next_run")
        }
        for row in list_schedules(service(current_platform()))
    ]


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The reports page."""
    reports = service(current_platform())
    sections: list[Any] = [html.H1("Reports", className="h4")]
    if user.may("reports:generate"):
        notebooks = reports.notebooks()
        sections.append(
            dbc.Card(
                dbc.CardBody(
                    [
                        dbc.Row(
                            [
                                dbc.Col(
                                    dcc.Dropdown(
                                        notebooks,
                                        notebooks[0] if notebooks else None,
                                        id="report-notebook",
                                        clearable=False,
                                    ),
                                    md=3,
                                ),
                                dbc.Col(
                                    dcc.Dropdown(
                                        formats.names(),
                                        "pdf" if "pdf" in formats.names() else None,
                                        id="report-format",
                                        clearable=False,
                                    ),
                                    md=2,
                                ),
                                dbc.Col(
                                    dbc.Input(
                                        id="report-parameters",
                                        placeholder='parameters as JSON, e.g. {"days": 7}',
                                    ),
                                    md=4,
                                ),
                                dbc.Col(
                                    dbc.Button(
                                        "Generate", id="report-generate", color="primary", className="w-100"
                                    ),
                                    md=1,
                                ),
                                dbc.Col(
                                    dbc.Input(id="report-cron", placeholder="cron, e.g. 0 8 * * *"), md=2
                                ),
                            ],
                            className="g-2",
                        ),
                        html.Div(
                            [
                                dbc.Button(
                                    "Schedule",
                                    id="report-schedule",
                                    color="secondary",
                                    size="sm",
                                    className="mt-2",
                                )
                            ]
                        ),
                        html.Div(id="report-result", className="mt-2"),
                    ]
                ),
                className="mb-3",
                id="report-form",
            )
        )
    sections += [
        dcc.Interval(id="report-tick", interval=2000),
        dag.AgGrid(
            id="reports-grid",
            columnDefs=timefmt.zoned(COLUMNS, "created_at"),
            rowData=archive(),
            getRowId="params.data.id",
            defaultColDef={"resizable": True, "sortable": True},
            style={"height": "360px"},
            dangerously_allow_code=False,
            className="ag-theme-quartz mb-3",
        ),
        html.H2("Schedules", className="h6"),
        dag.AgGrid(
            id="schedules-grid",
            columnDefs=timefmt.zoned(SCHEDULE_COLUMNS, "next_run"),
            rowData=schedules(),
            style={"height": "200px"},
            className="ag-theme-quartz",
        ),
    ]
    return html.Div(sections), []


def register(ui: dash.Dash) -> None:
    """Callbacks of the reports page."""

    @ui.callback(
        Output("reports-grid", "rowData"), Input("report-tick", "n_intervals"), prevent_initial_call=True
    )
    def progress(_: int) -> list[dict[str, Any]]:
        require_user("reports:read")
        return archive()

    @ui.callback(
        Output("report-result", "children"),
        Output("schedules-grid", "rowData"),
        Input("report-generate", "n_clicks"),
        Input("report-schedule", "n_clicks"),
        State("report-notebook", "value"),
        State("report-format", "value"),
        State("report-parameters", "value"),
        State("report-cron", "value"),
        prevent_initial_call=True,
    )
    def generate(_g: int, _s: int, notebook: str, fmt: str, raw: str | None, cron: str | None) -> Any:
        try:
            user = require_user("reports:generate")
            parameters = json.loads(raw) if raw else {}
            if not isinstance(parameters, dict):
                raise ValueError("parameters must be a JSON object")
            reports = service(current_platform())
            if dash.ctx.triggered_id == "report-schedule":
                if not cron:
                    raise ValueError("give a cron expression")
                create_schedule(
                    reports,
                    name=f"{notebook} {fmt}",
                    notebook=notebook,
                    format_name=fmt,
                    cron=cron,
                    parameters=parameters,
                    created_by=uuid.UUID(user.user_id),
                )
                return dbc.Alert("Scheduled.", color="success", duration=4000), schedules()
            report_id = reports.request(notebook, fmt, parameters, requested_by=uuid.UUID(user.user_id))
            reports.submit(report_id)
        except (Forbidden, ValueError, ReportRequestError) as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        return dbc.Alert("Report queued.", color="success", duration=4000, id="report-queued"), dash.no_update
