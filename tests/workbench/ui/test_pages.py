"""The UI in a real browser: login, live values over MQTT, dashboards, alerts, roles, screenshots."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from sqlalchemy import insert, select

from tests.workbench.ui.conftest import Plant, shot
from workbench.db.tables import alerts, dashboards
from workbench.live.bus import ALERT, ALERT_UPDATE
from workbench.mqtt import host_port, make_client
from workbench.rules.alerts import as_json as alert_json

pytestmark = [pytest.mark.slow, pytest.mark.chromium]

# wait_for_function always gets a function ("() => ..."), never an expression: the UI's CSP forbids eval,
# and Playwright re-evaluates an expression at each poll, which the policy then refuses (playwright#36986).


def wait_live(page: Page) -> None:
    """Until the page's Socket.IO subscriptions are confirmed by the server."""
    page.wait_for_function("() => window.wbLive && window.wbLive.state.subscribed >= 1", timeout=10_000)


class Publisher:
    """A connected MQTT client publishing design §6.2 messages (QoS 1)."""

    def __init__(self, url: str) -> None:
        self.client = make_client(url)
        host, port = host_port(url)
        self.client.connect(host, port)
        self.client.loop_start()

    def send(self, device_id: str, telemetry: dict[str, float]) -> None:
        body = {
            "timestamp": datetime.now(UTC).isoformat(),
            "device_id": device_id,
            "telemetry": {k: {"value": v, "unit": "C"} for k, v in telemetry.items()},
        }
        self.client.publish(f"insa/devices/{device_id}/telemetry", json.dumps(body), qos=1).wait_for_publish(
            5
        )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_login_is_required_and_overview_lists_devices(
    browser: Browser, plant: Plant, login: Callable[[str], Page]
) -> None:
    anonymous = browser.new_page()
    anonymous.goto(f"{plant.base}/ui/alerts")
    expect(anonymous).to_have_url(re.compile(r"/login\?next=/ui/alerts"))
    anonymous.fill("#email", plant.users["viewer"][0])
    anonymous.fill("#password", "wrong password")
    anonymous.click("#login")
    expect(anonymous.locator(".alert-danger")).to_contain_text("Wrong e-mail or password")
    shot(anonymous, "login")
    anonymous.close()

    page = login("operator")
    expect(page.locator("#device-grid")).to_contain_text("Pump P-101")
    expect(page.locator("#device-grid")).to_contain_text("Utilities")
    expect(page.locator("#kpi-online")).to_have_text(re.compile(r"\d+ / \d+"))
    shot(page, "overview")
    page.locator("#theme-dark").check()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    shot(page, "overview-dark")
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-bs-theme", "dark")
    page.locator("#theme-dark").uncheck()


def test_device_goes_online_and_a_value_arrives_live_after_an_mqtt_publish(
    plant: Plant, login: Callable[[str], Page], mqtt_url: str
) -> None:
    page = login("operator")
    page.goto(f"{plant.base}/ui/device/{plant.pump}")
    expect(page.locator("#device-status")).to_have_text("offline")
    # Let the page settle (Plotly draws three charts) before the clock starts.
    expect(page.locator("#history-graph .main-svg").first).to_be_visible(timeout=30_000)
    expect(page.locator(".js-plotly-plot")).to_have_count(3)
    wait_live(page)
    value = 55.25
    publisher = Publisher(mqtt_url)
    started = time.monotonic()
    publisher.send(plant.pump, {"temperature": value})
    # Poll every 20 ms in the page: expect()'s own back-off would blur the measurement.
    # A function, not an expression: Playwright evaluates interval-polled expressions with eval(), which
    # the UI's Content-Security-Policy forbids.
    page.wait_for_function(
        "() => document.querySelector('td[data-key=temperature]').textContent === '55.25'",
        polling=20,
        timeout=2000,
    )
    elapsed = time.monotonic() - started
    publisher.close()  # after the clock: paho's loop_stop waits up to a second for its thread
    print(f"publish -> rendered: {elapsed * 1000:.0f} ms")
    expect(page.locator("#device-status")).to_have_text("online", timeout=2000)
    assert elapsed < 2.0, f"live value took {elapsed:.2f} s"
    # The live chart was extended with the new point (extendData), not redrawn from history.
    page.wait_for_function(
        "() => { const g = document.querySelector("
        "'#live-graph-1 .js-plotly-plot, #live-graph-1.js-plotly-plot');"
        " return g && g.data[0].y[g.data[0].y.length - 1] === 55.25; }",
        timeout=5000,
    )
    shot(page, "device")
    page.goto(f"{plant.base}/ui/")
    expect(page.locator(f"#status-{plant.pump}")).to_have_text("online")


# The builder's first two cells sit side by side, the second to the right of the first.
SIDE_BY_SIDE = (
    "() => { const [a, b] = [...document.querySelectorAll('#builder-canvas .react-grid-item')]"
    ".map(e => e.getBoundingClientRect()); return Math.abs(a.top - b.top) < 2 && b.left > a.right; }"
)


def drag(page: Page, handle: Locator, dx: float, dy: float) -> None:
    """Press on ``handle``, move by (dx, dy) in small steps as a hand would, release."""
    box = handle.bounding_box()
    assert box is not None
    x, y = box["x"] + min(20, box["width"] / 2), box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 21):
        page.mouse.move(x + dx * step / 20, y + dy * step / 20)
    page.mouse.up()


def test_operator_builds_a_dashboard_by_drag_and_drop_and_finds_it_after_reload(
    plant: Plant, login: Callable[[str], Page]
) -> None:
    page = login("operator")
    page.goto(f"{plant.base}/ui/dashboards")
    page.click("#dashboard-new")
    name = f"Line 1 overview {uuid.uuid4().hex[:6]}"
    page.fill("#dashboard-name", name)
    choose(page, "#widget-device", "Pump P-101")
    choose(page, "#widget-keys", "temperature")
    page.click("#widget-add")
    cells = page.locator("#builder-canvas .react-grid-item")
    expect(cells).to_have_count(1)
    choose(page, "#widget-type", "Gauge")
    page.click("#widget-add")
    expect(cells).to_have_count(2)
    choose(page, "#widget-type", "Device status grid")
    page.click("#widget-add")
    expect(cells).to_have_count(3)
    cells.nth(2).locator("button[title=remove]").click()
    expect(cells).to_have_count(2)
    line, gauge = cells.nth(0), cells.nth(1)
    expect(gauge).to_contain_text("Gauge")
    grid = page.locator("#builder-canvas .react-grid-layout").bounding_box()
    line_box = line.bounding_box()
    assert grid is not None and line_box is not None
    column = (grid["width"] + 10) / 12  # one column and its gap
    # Drag the gauge (under the line chart) by its title bar to the right half of the top row.
    gauge_box = gauge.bounding_box()
    assert gauge_box is not None
    drag(page, gauge.locator(".wb-drag"), 6 * column, line_box["y"] - gauge_box["y"])
    page.wait_for_function(SIDE_BY_SIDE)
    # Resize the line chart from its corner: two columns narrower, three rows (40 px each) taller.
    drag(page, line.locator(".react-resizable-handle-se"), -2 * column, 3 * 40)
    page.wait_for_function(
        f"() => document.querySelector('#builder-canvas .react-grid-item').getBoundingClientRect().width"
        f" < {line_box['width'] - column}"
    )
    # The resized chart follows its cell (redrawn at the new size once the grid's transition ends).
    page.wait_for_function(
        "() => { const cell = document.querySelector('#builder-canvas .react-grid-item');"
        " const plot = cell.querySelector('.js-plotly-plot');"
        " return plot && plot.getBoundingClientRect().height > cell.getBoundingClientRect().height - 80; }"
    )
    shot(page, "dashboard-builder")
    page.click("#dashboard-save")
    expect(page.locator("#dashboard-title")).to_have_text(name)
    with plant.platform.engine.connect() as conn:
        row = conn.execute(select(dashboards).where(dashboards.c.name == name)).one()
    places = {w["type"]: item for w, item in zip(row.widgets, row.layout["items"], strict=True)}
    assert {k: places["line"][k] for k in "xywh"} == {"x": 0, "y": 0, "w": 4, "h": 10}, row.layout
    assert {k: places["gauge"][k] for k in "xywh"} == {"x": 6, "y": 0, "w": 6, "h": 7}, row.layout
    page.reload()
    expect(page.locator("#dashboard-title")).to_have_text(name)
    view = page.locator("#dashboard-grid .wb-cell")
    expect(view).to_have_count(2)
    expect(page.locator("#dashboard-grid .main-svg").first).to_be_visible()
    first, second = (view.nth(i).bounding_box() for i in range(2))
    assert first is not None and second is not None
    # Side by side as built: the line chart 4 columns wide and 10 rows tall, the gauge from column 7.
    assert abs(first["y"] - second["y"]) < 2 and second["x"] > first["x"] + first["width"] + column
    assert abs(first["height"] - (10 * 30 + 9 * 10)) < 2
    shot(page, "dashboard")
    # A phone: one column, in reading order, each widget keeping its height.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function(
        "() => { const [a, b] = [...document.querySelectorAll('#dashboard-grid .wb-cell')]"
        ".map(e => e.getBoundingClientRect());"
        " return b.top >= a.bottom && Math.abs(a.left - b.left) < 2; }"
    )
    shot(page, "dashboard-phone")
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{plant.base}/ui/dashboards")
    expect(page.locator("#dashboard-list")).to_contain_text(name)


def test_builder_moves_a_widget_by_touch_on_a_phone(plant: Plant, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        email, password = plant.users["engineer"]
        page.goto(f"{plant.base}/login")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("#login")
        page.wait_for_selector("#who", state="attached")
        page.goto(f"{plant.base}/ui/dashboards/new")
        choose(page, "#widget-device", "Pump P-101")
        choose(page, "#widget-type", "Gauge")
        page.click("#widget-add")
        choose(page, "#widget-type", "Stat with sparkline")
        page.click("#widget-add")
        cells = page.locator("#builder-canvas .react-grid-item")
        expect(cells).to_have_count(2)
        page.locator("#builder-canvas").scroll_into_view_if_needed()
        top, handle = cells.nth(0).bounding_box(), cells.nth(1).locator(".wb-drag").bounding_box()
        assert top is not None and handle is not None
        # A finger on the stat's title bar, moved up and to the right half of the first row.
        touch = context.new_cdp_session(page)
        x, y = handle["x"] + 20, handle["y"] + handle["height"] / 2
        touch.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
        for step in range(1, 21):
            point = {"x": x + 190 * step / 20, "y": y + (top["y"] - handle["y"]) * step / 20}
            touch.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        touch.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
        page.wait_for_function(SIDE_BY_SIDE)
        shot(page, "dashboard-builder-phone")
    finally:
        context.close()


def live_dashboard(plant: Plant) -> tuple[str, dict[str, str]]:
    """A public dashboard with one widget of each non-line kind on the pump; returns (id, widget ids)."""
    ids = {kind: f"{kind}{uuid.uuid4().hex[:6]}" for kind in ("gauge", "stat", "table", "alerts", "status")}
    bound = {"device_id": plant.pump, "keys": ["temperature"], "aggregation": "avg", "window": "1h"}
    widgets = [
        {"id": ids["gauge"], "type": "gauge", "title": "Temperature gauge", **bound},
        {"id": ids["stat"], "type": "stat", "title": "Temperature stat", **bound},
        {"id": ids["table"], "type": "table", "title": "Latest", **bound},
        {"id": ids["alerts"], "type": "alerts", "title": "Pump alerts", "device_id": plant.pump, "keys": []},
        {"id": ids["status"], "type": "status", "title": "Devices", "device_id": None, "keys": []},
    ]
    places = [(0, 0), (6, 0), (0, 7), (6, 7), (0, 14)]
    layout = {
        "columns": 12,
        "row_height": 30,
        "items": [
            {"id": w["id"], "x": x, "y": y, "w": 6, "h": 7} for w, (x, y) in zip(widgets, places, strict=True)
        ],
    }
    with plant.platform.engine.begin() as conn:
        dashboard_id = conn.execute(
            insert(dashboards)
            .values(name=f"Live {uuid.uuid4().hex[:6]}", widgets=widgets, layout=layout, is_public=True)
            .returning(dashboards.c.id)
        ).scalar_one()
    return str(dashboard_id), ids


PLOT_VALUE = (
    "(id => { const g = document.querySelector('#' + id + ' .js-plotly-plot');"
    " return g && g.data ? g.data[0].value : null; })"
)


def test_dashboard_widgets_follow_socketio_without_refetching(
    plant: Plant, login: Callable[[str], Page], mqtt_url: str
) -> None:
    dashboard_id, ids = live_dashboard(plant)
    page = login("viewer")
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    gauge, stat = f"w-{ids['gauge']}-gauge", f"w-{ids['stat']}-stat"
    expect(page.locator(f"#{gauge} .main-svg").first).to_be_visible(timeout=30_000)
    expect(page.locator(f"#{stat} .main-svg").first).to_be_visible()
    # device (pump), devices (status grid) and alerts (alert list): three confirmed subscriptions.
    page.wait_for_function("() => window.wbLive && window.wbLive.state.subscribed >= 3", timeout=10_000)
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "_dash-update-component" in r.url else None)
    spark_before = page.evaluate(f"document.querySelector('#{stat} .js-plotly-plot').data[1].x")

    value = 66.75
    publisher = Publisher(mqtt_url)
    started = time.monotonic()
    publisher.send(plant.pump, {"temperature": value})
    page.wait_for_function(
        f"() => {PLOT_VALUE}('{gauge}') === {value} && {PLOT_VALUE}('{stat}') === {value}"
        f" && document.getElementById('w-{ids['table']}-v0').textContent === '{value}'",
        polling=20,
        timeout=2000,
    )
    elapsed = time.monotonic() - started
    publisher.close()
    print(f"publish -> gauge, stat and table rendered: {elapsed * 1000:.0f} ms")
    assert elapsed < 2.0, f"live widgets took {elapsed:.2f} s"
    # The stat's sparkline grew by the new point (extendTraces), it was not redrawn from history.
    spark = page.evaluate(f"document.querySelector('#{stat} .js-plotly-plot').data[1]")
    assert spark["y"][-1] == value and spark["x"][:-1] == spark_before[-len(spark["x"]) + 1 :]
    # The pump's own card in the status grid (other tests of the module add devices that sort before it).
    pump_card = page.locator("span.d-inline-block", has=page.get_by_text("Pump P-101", exact=True))
    expect(pump_card.locator(f"[id^='w-{ids['status']}-s']")).to_have_text("online")

    # Alerts: a new one appears in the list, and leaves it when resolved.
    message = f"Pump hot {uuid.uuid4().hex[:6]}"
    with plant.platform.engine.begin() as conn:
        row = conn.execute(
            insert(alerts)
            .values(
                device_id=uuid.UUID(plant.pump),
                severity="warning",
                message=message,
                key="temperature",
                value=value,
                status="active",
                triggered_at=datetime.now(UTC),
            )
            .returning(*alerts.c)
        ).one()
    body = alert_json(dict(row._mapping))
    plant.platform.bus.publish(ALERT, body)
    alert_list = page.locator(f"#w-{ids['alerts']}-alerts")
    expect(alert_list).to_contain_text(message, timeout=2000)
    plant.platform.bus.publish(ALERT_UPDATE, {"id": body["id"], "status": "resolved"})
    expect(alert_list).not_to_contain_text(message, timeout=2000)
    shot(page, "dashboard-live")
    assert callbacks == [], f"live updates went through Dash callbacks: {callbacks}"


def test_live_widgets_redraw_at_most_ten_times_a_second(plant: Plant, login: Callable[[str], Page]) -> None:
    dashboard_id, ids = live_dashboard(plant)
    page = login("viewer")
    page.goto(f"{plant.base}/ui/dashboards/{dashboard_id}")
    gauge = f"w-{ids['gauge']}-gauge"
    expect(page.locator(f"#{gauge} .main-svg").first).to_be_visible(timeout=30_000)
    page.wait_for_function("() => window.wbLive && window.wbLive.state.subscribed >= 3", timeout=10_000)
    # 100 telemetry events in one second, straight into the page's handler: at most ~10 redraws,
    # and the last value shown.
    redraws = page.evaluate(
        """([device, gauge]) => new Promise(done => {
          const gd = document.querySelector('#' + gauge + ' .js-plotly-plot');
          let count = 0; const restyle = window.Plotly.restyle;
          window.Plotly.restyle = function (g) {
            if (g === gd) { count += 1; }
            return restyle.apply(this, arguments);
          };
          const handler = window.wbLive.state.socket.listeners('telemetry')[0];
          let i = 0; const started = performance.now();
          const timer = setInterval(() => {
            i += 1;
            const t = new Date().toISOString();
            handler({device_id: device, key: 'temperature', timestamp: t, value: 50 + i, unit: 'C',
                     quality: 100, points: [[t, 50 + i]]});
            if (i === 100) {
              clearInterval(timer);
              const elapsed = performance.now() - started;
              setTimeout(() => {
                window.Plotly.restyle = restyle; done([count, gd.data[0].value, elapsed]);
              }, 300);
            }
          }, 10);
        })""",
        [plant.pump, gauge],
    )
    count, last, elapsed = redraws
    assert last == 150
    # Timers stretch on a busy machine: the bound is one redraw per 100 ms of the events' own span.
    message = f"{count} redraws for 100 events in {elapsed:.0f} ms"
    assert 3 <= count <= elapsed / 100 + 2 and count < 50, message


def choose(page: Page, dropdown: str, label: str) -> None:
    """Pick ``label`` in a dcc.Dropdown."""
    page.locator(dropdown).click()
    page.get_by_role("option", name=label).first.click()
    page.keyboard.press("Escape")
    expect(page.locator(dropdown)).to_contain_text(label)


def test_operator_acknowledges_an_alert(plant: Plant, login: Callable[[str], Page]) -> None:
    message = f"Temperature high {uuid.uuid4().hex[:6]}"
    with plant.platform.engine.begin() as conn:
        alert_id = conn.execute(
            insert(alerts)
            .values(
                device_id=uuid.UUID(plant.pump),
                severity="critical",
                message=message,
                key="temperature",
                value=95.0,
                threshold=90.0,
                status="active",
                triggered_at=datetime.now(UTC),
            )
            .returning(alerts.c.id)
        ).scalar_one()
    page = login("operator")
    page.goto(f"{plant.base}/ui/alerts")
    page.get_by_text(message).click()
    expect(page.locator("#alert-evidence")).to_contain_text(message)
    page.fill("#alert-comment", "checked the pump on site")
    page.click("#alert-ack")
    expect(page.locator("#alert-done")).to_contain_text("acknowledged")
    row = page.locator(f".ag-row[row-id='{alert_id}']")
    expect(row.locator("[col-id=status]")).to_have_text("acknowledged")
    shot(page, "alerts")
    with plant.platform.engine.connect() as conn:
        stored = conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()
    assert stored.status == "acknowledged" and stored.ack_comment == "checked the pump on site"
