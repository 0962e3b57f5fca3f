"""Plotly figures the pages share: live lines, min/max bands, gauges, sparklines."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from workbench.ui import timefmt

MARGIN = {"l": 40, "r": 10, "t": 10, "b": 30}


def _layout(height: int | None) -> dict[str, Any]:
    # Transparent backgrounds and a neutral template let one figure read in light and dark themes.
    # No height: the figure fills its container (dashboard cells are resized by dragging).
    sized = {"height": height} if height else {"autosize": True}
    return {
        **sized,
        "margin": MARGIN,
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "template": "plotly_white",
        "showlegend": False,
        "uirevision": "keep",
        "xaxis": {"gridcolor": "rgba(128,128,128,0.2)"},
        "yaxis": {"gridcolor": "rgba(128,128,128,0.2)"},
        "font": {"color": "#888"},
    }


def fmt(value: Any) -> str:
    """A value as the latest-values table shows it (rounded to a sensible precision)."""
    return timefmt.number(value)


def _time_axis(figure: go.Figure) -> None:
    # Instants are drawn as wall-clock times of the user's zone, and the axis says which zone.
    figure.update_layout(
        xaxis={"title": {"text": timefmt.header(), "font": {"size": 11}}, "type": "date"},
        margin={**MARGIN, "b": 45},
    )


def line(
    x: list[Any],
    y: list[Any],
    height: int | None = 240,
    fill: bool = False,
    name: str | None = None,
    axis: bool = True,
) -> go.Figure:
    """A line (or area) chart of instants ``x`` (UTC), drawn in the user's zone: live charts extend it."""
    figure = go.Figure(
        go.Scatter(x=timefmt.walls(x), y=y, mode="lines", fill="tozeroy" if fill else None, name=name)
    )
    figure.update_layout(**_layout(height))
    if axis:
        _time_axis(figure)
    return figure


def band(data: dict[str, list[Any]], height: int = 300, name: str = "avg") -> go.Figure:
    """Average line with a min/max band when the data is aggregated, drawn in the user's zone."""
    data = {**data, "x": timefmt.walls(data["x"])}
    figure = go.Figure()
    if data.get("min"):
        figure.add_trace(go.Scatter(x=data["x"], y=data["max"], mode="lines", line={"width": 0}, name="max"))
        figure.add_trace(
            go.Scatter(
                x=data["x"],
                y=data["min"],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(99,110,250,0.2)",
                name="min",
            )
        )
    figure.add_trace(go.Scatter(x=data["x"], y=data["y"], mode="lines", name=name))
    figure.update_layout(**_layout(height))
    _time_axis(figure)
    return figure


def gauge(
    value: float | None, title: str, maximum: float | None = None, height: int | None = 200
) -> go.Figure:
    """A gauge of the latest value."""
    top = maximum if maximum is not None else max(100.0, (value or 0) * 1.5)
    figure = go.Figure(
        go.Indicator(
            mode="gauge+number", value=value or 0, title={"text": title}, gauge={"axis": {"range": [0, top]}}
        )
    )
    figure.update_layout(**_layout(height))
    return figure


def stat(value: float | None, x: list[Any], y: list[Any], title: str, height: int | None = 160) -> go.Figure:
    """A big number with a sparkline under it."""
    figure = go.Figure(
        go.Indicator(mode="number", value=value or 0, title={"text": title}, domain={"y": [0.4, 1]})
    )
    figure.add_trace(go.Scatter(x=timefmt.walls(x), y=y, mode="lines", fill="tozeroy", xaxis="x", yaxis="y"))
    figure.update_layout(**_layout(height))
    figure.update_layout(xaxis={"visible": False}, yaxis={"visible": False, "domain": [0, 0.35]})
    return figure
