"""Reports: generate a report notebook with parameters, follow its progress, download it; schedules."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html

from workbench.platform import current_platform
from workbench.reports import coverage, formats, params
from workbench.reports.schedules import create_schedule, list_schedules, with_next_run
from workbench.reports.service import ReportRequestError, service
from workbench.ui import timefmt
from workbench.ui.session import Forbidden, UiUser, require_user

PATH = "reports"
PERMISSION = "reports:read"  # the API permission behind this page
COLUMNS = [
    {"field": "created_at", "headerName": "Requested", "minWidth": 170, "sort": "desc"},
    {"field": "notebook", "minWidth": 160},
    {"field": "range", "headerName": "Range", "minWidth": 300},
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


def shown_range(parameters: dict[str, Any]) -> str:
    """A report's window in the user's zone (relative bounds such as ``now-1d`` as written)."""
    bounds = []
    for name in ("start", "end"):
        value = str(parameters.get(name, params.DEFAULT_WINDOW[name]))
        try:
            bounds.append(timefmt.show(datetime.fromisoformat(value.replace("Z", "+00:00")))[:16])
        except ValueError:
            bounds.append(value)
    return " to ".join(bounds)


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
                "range": shown_range(row.get("parameters") or {}),
                "format": row["format"],
                "status": row["status"],
                "progress": row["progress"],
                "error": row.get("error"),
                "download": f"[download](/api/v1/reports/{row['id']}/download)" if done else "",
            }
        )
    return out


def schedules() -> list[dict[str, Any]]:
    """Report schedules for the grid, each with its next run in the user's zone."""
    return [
        {
            k: (timefmt.show(v) if hasattr(v, "isoformat") else v)
            for k, v in with_next_run(row).items()
            if k in ("name", "notebook", "format", "cron", "timezone", "next_run")
        }
        for row in list_schedules(service(current_platform()))
    ]


def placeholder(notebook: str | None) -> str:
    """The parameters box's hint: the notebook's own parameters with their defaults, as JSON."""
    if not notebook:
        return "parameters as JSON"
    try:
        shown = coverage.example(service(current_platform()).notebook_path(notebook))
    except ReportRequestError:
        return "parameters as JSON"
    return json.dumps(shown, ensure_ascii=False)


def chosen(raw: str | None, start: str | None, end: str | None) -> dict[str, Any]:
    """The report's parameters from the form: the JSON box, the window, the user's zone unless given."""
    parameters = json.loads(raw) if raw and raw.strip() else {}
    if not isinstance(parameters, dict):
        raise ValueError("parameters must be a JSON object")
    window = {k: v.strip() for k, v in (("start", start), ("end", end)) if v and v.strip()}
    return {"timezone": timefmt.label(), **parameters, **window}


def window_note(notebook: str | None, raw: str | None, start: str | None, end: str | None) -> Any:
    """What the chosen window holds, said before rendering (a warning when it holds nothing)."""
    try:
        parameters = chosen(raw, start, end)
        found = coverage.coverage(current_platform().read_engine(), parameters, datetime.now(UTC))
    except (ValueError, params.ParameterError) as error:
        return html.Span(str(error), className="text-danger-emphasis", id="report-window-error")
    span = f"{timefmt.show(found.start)[:16]} to {timefmt.show(found.end)[:16]} ({timefmt.label()})"
    if found.empty:
        return html.Span(
            f"No data between {span}: the report would be empty. Choose another range.",
            className="text-warning-emphasis",
            id="report-window-empty",
        )
    points = f"{found.points:,}" + ("+" if found.points >= 100_000 else "")
    return html.Span(f"{points} points and {found.alerts} alerts between {span}.", id="report-window-data")


def page(user: UiUser, *_: str) -> tuple[Any, list[dict[str, Any]]]:
    """The reports page."""
    reports = service(current_platform())
    sections: list[Any] = [html.H1("Reports", className="h4")]
    if user.may("reports:generate"):
        notebooks = reports.notebooks()
        first = notebooks[0] if notebooks else None
        window = coverage.default_window(current_platform().read_engine(), {}, datetime.now(UTC))
        sections.append(
            dbc.Card(
                dbc.CardBody(
                    [
                        dbc.Row(
                            [
                                dbc.Col(
                                    dcc.Dropdown(
                                        notebooks,
                                        first,
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
                                dbc.Col(_bound("from", "report-start", window["start"]), md=3),
                                dbc.Col(_bound("to", "report-end", window["end"]), md=3),
                            ],
                            className="g-2",
                        ),
                        dbc.Row(
                            [
                                dbc.Col(
                                    [
                                        dbc.Label(
                                            "parameters",
                                            html_for="report-parameters",
                                            className="visually-hidden",
                                        ),
                                        dbc.Input(id="report-parameters", placeholder=placeholder(first)),
                                    ],
                                    md=5,
                                ),
                                dbc.Col(
                                    [
                                        dbc.Label(
                                            "cron", html_for="report-cron", className="visually-hidden"
                                        ),
                                        dbc.Input(id="report-cron", placeholder="cron, e.g. 0 8 * * *"),
                                    ],
                                    md=3,
                                ),
                                dbc.Col(
                                    dbc.Button(
                                        "Generate", id="report-generate", color="primary", className="w-100"
                                    ),
                                    md=2,
                                ),
                                dbc.Col(
                                    dbc.Button(
                                        "Schedule", id="report-schedule", color="secondary", className="w-100"
                                    ),
                                    md=2,
                                ),
                            ],
                            className="g-2 mt-1",
                        ),
                        html.Div(
                            window_note(first, None, window["start"], window["end"]),
                            id="report-window",
                            className="form-text mt-1",
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


def _bound(label: str, ident: str, value: str) -> Any:
    # A bound in the user's zone: ISO 8601 (an offset, or the zone's wall time) or now/today[±N(m|h|d|w)].
    with contextlib.suppress(ValueError):  # a relative bound is shown as written
        value = datetime.fromisoformat(value).astimezone(timefmt.current_zone()).isoformat(timespec="minutes")
    return dbc.InputGroup(
        [
            dbc.Label(label, html_for=ident, className="input-group-text mb-0"),
            dbc.Input(id=ident, value=value),
        ],
        size="sm",
    )


def register(ui: dash.Dash) -> None:
    """Callbacks of the reports page."""

    @ui.callback(
        Output("reports-grid", "rowData"), Input("report-tick", "n_intervals"), prevent_initial_call=True
    )
    def progress(_: int) -> list[dict[str, Any]]:
        require_user("reports:read")
        return archive()

    @ui.callback(
        Output("report-parameters", "placeholder"),
        Input("report-notebook", "value"),
        prevent_initial_call=True,
    )
    def hint(notebook: str | None) -> str:
        require_user("reports:generate")
        return placeholder(notebook)

    @ui.callback(
        Output("report-window", "children"),
        Input("report-notebook", "value"),
        Input("report-parameters", "value"),
        Input("report-start", "value"),
        Input("report-end", "value"),
        prevent_initial_call=True,
    )
    def note(notebook: str | None, raw: str | None, start: str | None, end: str | None) -> Any:
        require_user("reports:generate")
        return window_note(notebook, raw, start, end)

    @ui.callback(
        Output("report-result", "children"),
        Output("schedules-grid", "rowData"),
        Input("report-generate", "n_clicks"),
        Input("report-schedule", "n_clicks"),
        State("report-notebook", "value"),
        State("report-format", "value"),
        State("report-parameters", "value"),
        State("report-cron", "value"),
        State("report-start", "value"),
        State("report-end", "value"),
        prevent_initial_call=True,
    )
    def generate(
        _g: int, _s: int, notebook: str, fmt: str, raw: str | None, cron: str | None, start: str, end: str
    ) -> Any:
        try:
            user = require_user("reports:generate")
            parameters = chosen(raw, start, end)
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
                    timezone=parameters.pop("timezone"),
                    parameters=parameters,
                    created_by=uuid.UUID(user.user_id),
                )
                return dbc.Alert("Scheduled.", color="success", duration=4000), schedules()
            found = coverage.coverage(current_platform().read_engine(), parameters, datetime.now(UTC))
            if found.empty:  # said before rendering, not after a run over nothing
                return window_note(notebook, raw, start, end), dash.no_update
            report_id = reports.request(notebook, fmt, parameters, requested_by=uuid.UUID(user.user_id))
            reports.submit(report_id)
        except (Forbidden, ValueError, ReportRequestError, params.ParameterError) as error:
            return dbc.Alert(str(error), color="danger"), dash.no_update
        return dbc.Alert("Report queued.", color="success", duration=4000, id="report-queued"), dash.no_update
