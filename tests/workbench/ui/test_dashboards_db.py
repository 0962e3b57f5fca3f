"""Dashboard layouts: the grid places the builder saves, and older layouts (widths and pixel heights)."""

from __future__ import annotations

from workbench.ui import dashboards_db
from workbench.ui.widgets import live_subscriptions


def test_legacy_layouts_flow_left_to_right_in_rows() -> None:
    dashboard = {
        "widgets": [{"id": "a", "type": "line"}, {"id": "b", "type": "gauge"}, {"id": "c", "type": "table"}],
        "layout": {"columns": 12, "items": [{"id": "a", "w": 8, "h": 300}, {"id": "b", "w": 6, "h": 260}]},
    }
    placed = {w["id"]: {k: w[k] for k in "xywh"} for w in dashboards_db.ordered(dashboard)}
    # 300 px is 8 rows of 30 px with 10 px gaps (310 px): the closest whole number of rows.
    assert placed["a"] == {"x": 0, "y": 0, "w": 8, "h": 8}
    assert placed["b"] == {"x": 0, "y": 8, "w": 6, "h": 7}  # 8 + 6 > 12: next row
    assert placed["c"] == {"x": 6, "y": 8, "w": 6, "h": 7}  # no layout item: the defaults


def test_grid_places_round_trip_through_the_stored_layout() -> None:
    widgets = [
        {"id": "a", "type": "line", "x": 0, "y": 0, "w": 6, "h": 7},
        {"id": "b", "type": "gauge", "x": 0, "y": 7, "w": 6, "h": 7},
    ]
    # The grid reports b dragged beside a and a resized (react-grid-layout's items, i = cell-<id>).
    grid = [
        {"i": "cell-a", "x": 0, "y": 0, "w": 4, "h": 10, "moved": False},
        {"i": "cell-b", "x": 6, "y": 0, "w": 6, "h": 7, "moved": False},
    ]
    stored, layout = dashboards_db.split(dashboards_db.with_grid(widgets, grid))
    assert stored == [{"id": "a", "type": "line"}, {"id": "b", "type": "gauge"}]
    assert layout["row_height"] == dashboards_db.ROW_HEIGHT
    assert layout["items"] == [
        {"id": "a", "x": 0, "y": 0, "w": 4, "h": 10},
        {"id": "b", "x": 6, "y": 0, "w": 6, "h": 7},
    ]
    again = dashboards_db.ordered({"widgets": stored, "layout": layout})
    assert [(w["id"], w["x"], w["y"], w["w"], w["h"]) for w in again] == [
        ("a", 0, 0, 4, 10),
        ("b", 6, 0, 6, 7),
    ]
    assert dashboards_db.place_new(again) == {"x": 0, "y": 10, "w": 6, "h": 7}


def test_out_of_range_places_are_clamped() -> None:
    dashboard = {
        "widgets": [{"id": "a", "type": "stat"}],
        "layout": {"row_height": 30, "items": [{"id": "a", "x": 11, "y": -3, "w": 40, "h": 1}]},
    }
    (widget,) = dashboards_db.ordered(dashboard)
    assert {k: widget[k] for k in "xywh"} == {"x": 0, "y": 0, "w": 12, "h": dashboards_db.MIN_ROWS}


def test_live_subscriptions_group_targets_by_device() -> None:
    targets = [
        {"device_id": "d1", "key": "t", "gauge": "g1"},
        {"device_id": "d1", "key": "t", "stat": "s1"},
        {"device_id": "d1", "key": "p", "value": {"value": "v", "time": "t"}},
        {"device_id": "d2", "key": "t", "graph": "l1"},
        {"statuses": {"d1": "b1", "d2": "b2"}},
        {"statuses": {"d1": "b3"}},
        {"alerts": {"id": "al", "device_id": None, "items": [], "limit": 10}},
    ]
    subs = live_subscriptions(targets)
    by_type = {(s["type"], s.get("device_id")): s for s in subs}
    d1 = by_type[("device", "d1")]
    assert d1["keys"] == ["t", "p"] and d1["gauges"] == {"t": ["g1"]} and d1["stats"] == {"t": ["s1"]}
    assert d1["values"] == {"p": [{"value": "v", "time": "t"}]}
    assert by_type[("device", "d2")]["graphs"] == {"t": ["l1"]}
    assert by_type[("devices", None)]["statuses"] == {"d1": ["b1", "b3"], "d2": ["b2"]}
    assert by_type[("alerts", None)]["lists"][0]["id"] == "al"
