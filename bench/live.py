"""Live latency: MQTT publish -> value rendered in a real browser, p50/p99, under background ingest.

Run: ``.venv/bin/python bench/live.py`` (uses the machine's PostgreSQL at 127.0.0.1:5432 unless
``--server`` names another, in a fresh ``workbench_live_<random>`` database dropped at the end; starts its own
MQTT broker on a free port, the ingest service in-process as ``workbench up`` does, the web server, and
Debian's headless Chromium).

Path measured: a probe publishes one value (QoS 1) to ``insa/devices/<probe>/telemetry``; ingest decodes,
validates and COPYs it into PostgreSQL, publishes the committed batch on the bus; the Socket.IO server
emits it to the device room; the Device page's script writes it into the latest-value cell. A
MutationObserver in the page stamps the render (``Date.now()``); publish and render clocks are the same
machine's. Background load: other devices publish 10-key messages at the given points/s from another
process (nobody watches them in the browser: they load ingest, the database and the fan-out).

Stages printed for each load level (each a p50/p99 over the probe values):
  publish->bus     MQTT, decode, validation, the writer's queue, COPY and commit (the batch's committed_at)
  bus->emit        bus handlers, the watched-device filter, grouping into events, Socket.IO emit
  emit->browser    the websocket writer thread, the network, the browser's Socket.IO client (onAny)
  browser->render  the page script: throttle and DOM write, up to the MutationObserver
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert
from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from ingest.broker import LocalBroker  # noqa: E402
from ingest.service import start_in_process  # noqa: E402
from workbench.auth.users import create_user  # noqa: E402
from workbench.db.embedded import scratch_database  # noqa: E402
from workbench.db.tables import devices, latest_values  # noqa: E402
from workbench.live.bus import TELEMETRY_BATCH  # noqa: E402
from workbench.live.events import TelemetryBatch  # noqa: E402
from workbench.live.socket import live_server  # noqa: E402
from workbench.mqtt import host_port, make_client  # noqa: E402
from workbench.platform import EXTENSION, Platform  # noqa: E402
from workbench.settings import Settings  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BACKGROUND_DEVICES = 100
KEYS_PER_MESSAGE = 10
PASSWORD = "live-bench-password"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def seed(engine: Engine) -> tuple[str, list[str]]:
    """The probe device (with a latest value, so its page has the cell) and the background devices."""
    probe = uuid.uuid4()
    background = [uuid.uuid4() for _ in range(BACKGROUND_DEVICES)]
    with engine.begin() as conn:
        conn.execute(
            insert(devices),
            [
                {"id": d, "name": f"dev-{i}", "type": "sensor", "area": "bench", "config": {}}
                for i, d in enumerate([probe, *background])
            ],
        )
        conn.execute(
            insert(latest_values).values(
                device_id=probe, key="probe", timestamp=datetime.now(UTC), value=0.0, unit="ms", quality=100
            )
        )
    return str(probe), [str(d) for d in background]


def publish_background(url: str, targets: list[str], rate: int, stop: Any, sent: Any) -> None:
    """Publish ``rate`` points/s as 10-key messages (QoS 1, not awaited) until ``stop`` is set."""
    client = make_client(url)
    client.max_inflight_messages_set(1000)
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    messages_per_s = rate / KEYS_PER_MESSAGE
    started = time.monotonic()
    count = index = 0
    while not stop.is_set():
        due = int((time.monotonic() - started) * messages_per_s)
        while count < due:
            device = targets[index % len(targets)]
            index += 1
            body = {
                "device_id": device,
                "telemetry": {
                    f"k{k}": {"value": float(count % 1000 + k), "unit": "u"} for k in range(KEYS_PER_MESSAGE)
                },
            }
            client.publish(f"insa/devices/{device}/telemetry", json.dumps(body), qos=1)
            count += 1
        sent.value = count
        time.sleep(0.02)
    client.loop_stop()
    client.disconnect()


class Background:
    """The background load, in a process of its own: a load generator sharing the server's process
    would take the GIL from the path being measured."""

    def __init__(self, url: str, targets: list[str], rate: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.sent = context.Value("q", 0)
        self.process = context.Process(
            target=publish_background, args=(url, targets, rate, self.stop_event, self.sent), daemon=True
        )

    def start(self) -> None:
        """Start publishing; returns once the first messages are out (the process takes a while to start)."""
        self.process.start()
        deadline = time.monotonic() + 60
        while self.sent.value == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.started = time.monotonic()
        self.first = self.sent.value

    def finish(self) -> float:
        """Stop; returns the achieved points/s since start() returned."""
        points = (self.sent.value - self.first) * KEYS_PER_MESSAGE
        elapsed = time.monotonic() - self.started
        self.stop_event.set()
        self.process.join(10)
        return points / elapsed


class StageClock:
    """Stamps when each probe value reaches the bus (committed by ingest) and leaves Socket.IO."""

    def __init__(self, platform: Platform, probe: str) -> None:
        self.bus: dict[str, float] = {}
        self.emitted: dict[str, float] = {}
        self.probe = probe
        platform.bus.subscribe(TELEMETRY_BATCH, self._on_batch)
        server = live_server(platform)
        assert server is not None, "the web app started no live server"
        server.emit_hooks.append(self._on_emit)

    def _on_batch(self, topic: str, batch: TelemetryBatch) -> None:
        # The writer stamps the batch as it publishes it: bus handlers run in turn (this one may run
        # after the Socket.IO fan-out), so the stamp, not this handler's clock, marks "on the bus".
        now = batch.committed_at.timestamp() * 1000
        frame = batch.frame
        for value in frame.loc[frame["device_id"] == self.probe, "value"].tolist():
            self.bus.setdefault(f"{value:.1f}", now)

    def _on_emit(self, event: str, data: dict[str, object]) -> None:
        if event != "telemetry" or data.get("device_id") != self.probe:
            return
        now = time.time() * 1000
        for _, value in data["points"]:  # type: ignore[attr-defined]
            self.emitted.setdefault(f"{value:.1f}", now)


# In the page: stamp each probe value as the Socket.IO client receives it (onAny runs before the handlers).
RECEIVE_STAMP = """probe => { window.__received = [];
  window.wbLive.state.socket.prependAny((name, ev) => {
    if (name === 'telemetry' && ev.device_id === probe) {
      const now = Date.now(); ev.points.forEach(p => window.__received.push([p[1].toFixed(1), now]));
    } }); }"""
PROBE_VALUES = itertools.count(1)
STAGES = ("publish->bus", "bus->emit", "emit->browser", "browser->render", "publish->render")


def measure(
    page: object, url: str, probe: str, samples: int, gap: float, clock: StageClock
) -> dict[str, list[float]]:
    """Publish ``samples`` probe values ``gap`` s apart; latencies (ms) of each stage, by STAGES name."""
    client = make_client(url)
    host, port = host_port(url)
    client.connect(host, port)
    client.loop_start()
    sent: dict[str, float] = {}
    clock.bus.clear()
    clock.emitted.clear()
    for _ in range(samples):
        value = f"{next(PROBE_VALUES)}.5"  # unique across calls
        sent[value] = time.time() * 1000
        body = {"device_id": probe, "telemetry": {"probe": {"value": float(value), "unit": "ms"}}}
        client.publish(f"insa/devices/{probe}/telemetry", json.dumps(body), qos=1)
        time.sleep(gap)
    time.sleep(1.0)
    client.loop_stop()
    client.disconnect()
    # The first stamp of each value counts: Dash re-rendering the same text later is not the render.
    renders: dict[str, float] = {}
    for value, stamp in page.evaluate("window.__renders.splice(0)"):  # type: ignore[attr-defined]
        renders.setdefault(value, stamp)
    received: dict[str, float] = {}
    for value, stamp in page.evaluate("window.__received.splice(0)"):  # type: ignore[attr-defined]
        received.setdefault(value, stamp)
    missing = [v for v in sent if v not in renders]
    if missing:
        print(
            f"  {len(missing)} of {samples} probe values never rendered (throttling keeps the newest)",
            flush=True,
        )
    marks = [sent, clock.bus, clock.emitted, received, renders]
    stages: dict[str, list[float]] = {}
    for index, name in enumerate(STAGES[:-1]):
        start, end = marks[index], marks[index + 1]
        stages[name] = [end[v] - start[v] for v in sent if v in start and v in end]
    stages[STAGES[-1]] = [renders[v] - sent[v] for v in sent if v in renders]
    return stages


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    """Run the benchmark and print the table."""
    import faulthandler

    faulthandler.dump_traceback_later(600, exit=True)  # a stuck run says where it stuck
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--samples", type=int, default=100, help="probe values per load level")
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between probe values")
    parser.add_argument("--rates", default="0,1000,10000", help="background points/s, comma-separated")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no request log between the figures
    from playwright.sync_api import sync_playwright

    data_dir = Path(tempfile.mkdtemp(prefix="workbench-live-bench-"))
    broker = LocalBroker(free_port(), data_dir, allow_anonymous=True)  # the bench's clients
    mqtt_url = broker.start()
    try:
        with scratch_database(args.server, "workbench_live") as url:
            settings = Settings.from_env({}, database_url=url, data_dir=data_dir, mqtt_url=mqtt_url)
            settings = replace(settings, ingest_client_id=f"live-bench-{uuid.uuid4().hex[:6]}")
            app = create_app(settings)
            platform: Platform = app.extensions[EXTENSION]
            stop_ingest = start_in_process(platform)
            probe, background = seed(platform.engine)
            create_user(platform.engine, "bench@example.com", "viewer", PASSWORD)
            port = free_port()
            server = make_server("127.0.0.1", port, app, threaded=True)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            base = f"http://127.0.0.1:{port}"
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    page = browser.new_page()
                    page.set_default_timeout(60_000)
                    page.goto(f"{base}/login")
                    page.fill("#email", "bench@example.com")
                    page.fill("#password", PASSWORD)
                    page.click("#login")
                    page.wait_for_selector("#who")
                    page.goto(f"{base}/ui/device/{probe}")
                    page.wait_for_selector("#history-graph .main-svg")
                    page.wait_for_function("window.wbLive && window.wbLive.state.subscribed >= 1")
                    page.evaluate(
                        "window.__renders = []; const cell = document.querySelector('td[data-key=probe]');"
                        "new MutationObserver(() => window.__renders.push([cell.textContent, Date.now()]))"
                        ".observe(cell, {childList: true, subtree: true, characterData: true});"
                    )
                    page.evaluate(RECEIVE_STAMP, probe)
                    clock = StageClock(platform, probe)
                    measure(page, mqtt_url, probe, 40, args.gap, clock)  # warm-up (page settles), not counted
                    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
                    print(
                        f"{'background points/s':>20} {'achieved':>9} {'stage':>16} {'p50 ms':>8}"
                        f" {'p99 ms':>8} {'max ms':>8} {'n':>4}",
                        flush=True,
                    )
                    for rate in [int(r) for r in args.rates.split(",")]:
                        load = Background(mqtt_url, background, rate) if rate else None
                        if load:
                            load.start()
                            time.sleep(3)  # reach steady state
                        stages = measure(page, mqtt_url, probe, args.samples, args.gap, clock)
                        achieved = load.finish() if load else 0.0
                        for name in STAGES:
                            values = stages[name] or [float("nan")]
                            print(
                                f"{rate:>20,} {achieved:>9,.0f} {name:>16} {statistics.median(values):>8.1f}"
                                f" {percentile(values, 99):>8.1f} {max(values):>8.1f} {len(stages[name]):>4}",
                                flush=True,
                            )
                        print(f"load average (1 min): {os.getloadavg()[0]:.2f}", flush=True)
                        time.sleep(2)  # let ingest drain before the next level
                    browser.close()
            finally:
                server.shutdown()
                stop_ingest()
                platform.engine.dispose()
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
