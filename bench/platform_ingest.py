"""``bench/ingest.py --platform``: the whole platform as users run it (``workbench up``, its own process tree)
under an external load, against the binary COPY limit measured in the same run.

Starts a scratch database on the server named by ``--database-url`` (dropped at the end), a private Mosquitto
on a free port with the config ``workbench up`` writes (``max_inflight_messages 1000``, ``max_queued_messages
1000000``; ``persistence false``), and ``workbench up`` from this checkout with auto-registration of device
UUIDs, its own data directory and web port; waits for ``/healthz``. A publisher process then sends
``--messages`` ten-point JSON messages in the design's format on ``insa/devices/{id}/telemetry`` for 100
devices, QoS 1, at most ``--inflight`` unacknowledged, packets built before the clock starts, after a warm-up
(the same devices: they are registered before the clock). The clock runs from the first publish until
``count(*)`` of telemetry reaches every point; the rows' count, sums, devices, keys and time range are checked
against what was sent. Then the same rows go into the same table by binary COPY: the database's limit.

``--rules [on|both]`` creates 100 threshold and 20 statistical rules through the REST API as an admin first
(``both``: measures without, then with, and prints the cost in %). ``--http`` adds HTTP batch ingest through
the production web server (POST /api/v1/telemetry, 1,000 points a request, ``--http-clients`` processes, each
with its device's API key), and its ratio to the MQTT figure with the same rules.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from bench.ingest_limits import copy_rows, run_publisher
from bench.platform_load import (
    check_rows,
    copy_data,
    cpu_seconds,
    device_ids,
    http_client,
    http_readings,
    publish_phase,
    readings,
    summarize,
    tree_cpu,
)
from bench.platform_setup import ROOT, Platform, create_rules, device_key

DEVICES = 100
POLL = 0.1
STALL = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--platform`` mode."""
    group = parser.add_argument_group("--platform: the whole platform (`workbench up`) as its own process")
    group.add_argument(
        "--platform", action="store_true", help="measure `workbench up` under an external load"
    )
    group.add_argument(
        "--rules",
        nargs="?",
        const="on",
        default="off",
        choices=("off", "on", "both"),
        help="120 rules loaded through the REST API (both: without, then with, and the cost in %%)",
    )
    group.add_argument("--http", action="store_true", help="also HTTP batches through the web server")
    group.add_argument("--http-clients", type=int, default=4, help="HTTP client processes (default 4)")
    group.add_argument("--warmup", type=int, default=2000, help="warm-up messages (default 2000)")
    group.add_argument("--inflight", type=int, default=1000, help="most unacknowledged publishes (1000)")


class Meter:
    """CPU seconds of the workbench, Mosquitto and PostgreSQL (server tree, and this database's backends)."""

    def __init__(self, platform: Platform, conn: psycopg.Connection[Any]) -> None:
        assert platform.process is not None and platform.broker is not None
        self.roots = {"workbench": platform.process.pid, "mosquitto": platform.broker.pid}
        self.conn, self.database = conn, platform.database
        self.own = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        postmaster = _parent(self.own)
        if postmaster and "postgres" in _cmdline(postmaster):  # the server runs here: its CPU is readable
            self.roots["postgres_server"] = postmaster
        self.local = "postgres_server" in self.roots

    def snapshot(self) -> dict[str, Any]:
        """Now: CPU seconds per tree, and per backend of this database."""
        backends: dict[int, float] = {}
        if self.local:
            pids = self.conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> %s", (self.database, self.own)
            ).fetchall()
            backends = {pid: cpu_seconds(pid) for (pid,) in pids}
        return {"trees": tree_cpu(self.roots), "backends": backends, "at": time.time()}

    @staticmethod
    def spent(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
        """CPU seconds between two snapshots; ``postgres_database``: backends alive at the end."""
        out = {
            name: round(after["trees"][name] - before["trees"].get(name, 0.0), 2) for name in after["trees"]
        }
        if after["backends"]:
            out["postgres_database"] = round(
                sum(cpu - before["backends"].get(pid, 0.0) for pid, cpu in after["backends"].items()), 2
            )
        return out


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat[stat.rfind(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _count(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])  # type: ignore[index]


def _truncate(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET lock_timeout = '60s'")
    conn.execute("TRUNCATE telemetry")


def _wait_rows(conn: psycopg.Connection[Any], expected: int) -> int:
    """Poll until ``expected`` rows or no progress for ``STALL`` seconds; the count."""
    last, changed = -1, time.monotonic()
    while (found := _count(conn)) < expected and time.monotonic() - changed < STALL:
        if found != last:
            last, changed = found, time.monotonic()
        time.sleep(POLL)
    return found


def _commit() -> str:
    import subprocess

    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() or "unknown"


def _base(count: int) -> datetime:
    """Readings end about now (rules see live data), one a second per device."""
    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(seconds=count // DEVICES + 1)


def mqtt_phase(
    platform: Platform, meter: Meter, devices: list[str], args: Any, seed: int, base: datetime
) -> dict[str, Any]:
    """One measured MQTT run (after its warm-up): points/s end to end and what it cost."""
    conn, count = meter.conn, args.messages
    want = summarize(readings(devices, count, seed, base))
    process, channel = run_publisher(
        publish_phase, "127.0.0.1", platform.mqtt_port, devices, count, args.warmup, seed, base, args.inflight
    )
    try:
        _truncate(conn)  # an earlier phase's rows would count as the warm-up's
        channel.put("warmup")
        assert channel.get(timeout=600) == "warm"
        warmed = _wait_rows(conn, args.warmup * 10)
        if warmed < args.warmup * 10:
            raise RuntimeError(
                f"warm-up: {warmed} of {args.warmup * 10} points committed\n{platform.log_tail()}"
            )
        _truncate(conn)
        evaluations = platform.rules_idle()[0]
        before = meter.snapshot()
        channel.put("go")
        result, at_publish_end, found, t_end = None, 0, 0, 0.0
        expected, last, changed = count * 10, -1, time.monotonic()
        while True:
            polled = time.time()  # the count's snapshot is taken about now: rows it sees committed before
            found = _count(conn)
            if result is None:
                with contextlib.suppress(queue.Empty):
                    result, at_publish_end = channel.get(timeout=0), found
            if found != last:
                last, changed, t_end = found, time.monotonic(), polled
            if found >= expected or time.monotonic() - changed > STALL:
                break
            time.sleep(POLL)
        after = meter.snapshot()
        if result is None:
            result = channel.get(timeout=120)
            at_publish_end = found
        process.join(10)
        evaluated, caught_up = platform.rules_idle()
        settled = meter.snapshot()
    finally:
        if process.is_alive():
            process.terminate()
    seconds = t_end - result["started"]
    publish_seconds = result["last_ack"] - result["started"]
    cpu = Meter.spent(before, after)
    cpu["publisher"] = round(result["cpu_seconds"], 2)
    return {
        "measure": "mqtt_end_to_end",
        "rules": "off",
        "messages": count,
        "points": expected,
        "rows_committed": found,
        "lost": expected - found,
        "data_check": check_rows(conn, want),
        "seconds": round(seconds, 3),
        "points_per_s": round(found / seconds, 1),
        "publish_seconds": round(publish_seconds, 3),
        "publish_points_per_s": round(result["acked"] * 10 / publish_seconds, 1),
        "lag_last_puback_to_last_row_s": round(t_end - result["last_ack"], 3),
        "rows_at_publish_end": at_publish_end,
        "drain_points_per_s": round((found - at_publish_end) / (t_end - result["last_ack"]), 1)
        if t_end > result["last_ack"] and found > at_publish_end
        else None,
        "rule_evaluations": evaluated - evaluations,
        "rules_caught_up_s": round(max(caught_up, t_end) - result["started"], 3),
        "cpu_seconds": cpu,
        "cpu_cores_busy": {name: round(value / seconds, 2) for name, value in cpu.items()},
        # the rule engine finishes after the last commit: its CPU shows in this window
        "workbench_cpu_seconds_until_rules_caught_up": Meter.spent(before, settled)["workbench"],
    }


def http_phase(platform: Platform, meter: Meter, devices: list[str], args: Any, seed: int) -> dict[str, Any]:
    """HTTP batches of 1,000 points from ``--http-clients`` processes, each with its device's key."""
    conn, clients = meter.conn, args.http_clients
    batches = max(1, args.messages * 10 // 1000 // clients)
    base = _base(batches * 100 * DEVICES)  # one reading a second per client device, ending about now
    chosen = devices[:clients]
    keys = [device_key(platform, device) for device in chosen]
    want = summarize(
        reading
        for index, device in enumerate(chosen)
        for reading in http_readings(device, batches, seed + index, base)
    )
    _truncate(conn)
    started = [
        run_publisher(http_client, platform.base_url, keys[i], chosen[i], batches, seed + i, base)
        for i in range(clients)
    ]
    before = meter.snapshot()
    for _, channel in started:
        channel.put("go")
    results = [channel.get(timeout=900) for _, channel in started]
    after = meter.snapshot()
    for process, _ in started:
        process.join(10)
    first = min(r["started"] for r in results)
    seconds = max(r["finished"] for r in results) - first
    accepted = sum(r["accepted"] for r in results)
    found = _count(conn)
    cpu = Meter.spent(before, after)
    return {
        "measure": "http_batches",
        "clients": clients,
        "batch_points": 1000,
        "points": want.rows,
        "accepted": accepted,
        "rows_committed": found,
        "failures": [f for r in results for f in r["failures"]][:5],
        "data_check": check_rows(conn, want),
        "seconds": round(seconds, 3),
        "points_per_s": round(accepted / seconds, 1),
        "cpu_seconds": cpu,
        "cpu_cores_busy": {name: round(value / seconds, 2) for name, value in cpu.items()},
    }


def copy_phase(
    conn: psycopg.Connection[Any], url: str, devices: list[str], count: int, seed: int, base: datetime
) -> dict[str, Any]:
    """Binary COPY of the last MQTT run's rows into the same (truncated) table: the database's limit."""
    from workbench.db.engine import libpq_url

    _truncate(conn)
    data = copy_data(readings(devices, count, seed, base))
    rate = copy_rows(libpq_url(url), data)
    check = check_rows(conn, summarize(readings(devices, count, seed, base)))
    _truncate(conn)
    return {"measure": "binary_copy", "rows": len(data), "rows_per_s": round(rate, 1), "data_check": check}


def measure(args: Any) -> list[dict[str, Any]]:
    """Every measurement of one ``--platform`` run, as records (one per measurement)."""
    from workbench.db.engine import libpq_url

    records: list[dict[str, Any]] = []
    devices = device_ids(DEVICES, 42)
    load_start = os.getloadavg()[0]
    with (
        Platform(args.database_url) as platform,
        psycopg.connect(libpq_url(platform.url), autocommit=True) as conn,
    ):
        meter = Meter(platform, conn)
        phases = {"off": ["off"], "on": ["on"], "both": ["off", "on"]}[args.rules]
        mqtt: dict[str, dict[str, Any]] = {}
        for n, rules in enumerate(phases):
            label = rules
            if rules == "on":
                label = f"on ({create_rules(platform, devices)} rules)"
                time.sleep(2.0)  # the engine reloads on the change event; the warm-up runs through the rules
            seed, base = 100 + n, _base(args.messages)
            record = mqtt_phase(platform, meter, devices, args, seed, base)
            record["rules"] = label
            records.append(mqtt.setdefault(rules, record))
            if args.http and n == 0:  # HTTP beside the first MQTT figure, with the same rules
                http = http_phase(platform, meter, devices, args, seed=200)
                http["rules"] = label
                http["ratio_to_mqtt"] = round(http["points_per_s"] / record["points_per_s"], 3)
                records.append(http)
        copy = copy_phase(conn, platform.url, devices, args.messages, seed, base)
    records.append(copy)
    for record in records:
        if record["measure"] in ("mqtt_end_to_end", "http_batches"):
            record["ratio_to_copy"] = round(record["points_per_s"] / copy["rows_per_s"], 3)
    if "off" in mqtt and "on" in mqtt:
        off, on = mqtt["off"]["points_per_s"], mqtt["on"]["points_per_s"]
        records.append({"measure": "rules_cost", "percent": round(100 * (off - on) / off, 1)})
    records.append(
        {
            "measure": "run",
            "load_average_1min_start": load_start,
            "load_average_1min_end": os.getloadavg()[0],
            "commit": _commit(),
            "database": platform.database,
            "workbench_pid": meter.roots["workbench"],
        }
    )
    return records


def run(args: Any) -> None:
    """Measure and print a table (or, with ``--json``, one JSON line per measurement)."""
    records = measure(args)
    if args.json:
        for record in records:
            print(json.dumps(record), flush=True)
        return
    for record in records:
        name = record["measure"] + (f" (rules {record['rules']})" if "rules" in record else "")
        print(name)
        for key, value in record.items():
            if key not in ("measure", "rules"):
                shown = f"{value:,.1f}" if isinstance(value, float) and abs(value) >= 100 else value
                print(f"  {key:<44} {shown}")
