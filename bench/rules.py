"""Rule-engine benchmark: ingest throughput with no rules against 140 rules over 1,000 devices, same run;
point-committed -> alert latency p50/p99.

    .venv/bin/python bench/rules.py [--database-url URL] [--rounds N] [--json]

Creates a scratch database on the server named by ``--database-url`` (default: the machine's PostgreSQL),
dropped at the end. Points go through the real ingest pipeline (validation, binary-COPY batch writer, bus
events), submitted as fast as the pipeline takes them: 1,000 devices x 4 keys per round of event time.
Phase "no rules": the pipeline alone. Phase "rules": the same load with a RuleEngine evaluating 100 threshold
(a third with durations), 20 comparison and 20 statistical rules. Latency: spike points on 20 extra devices
trip an instant threshold rule; from the spike's commit (the writer's on_committed callback, run after its
transaction committed) to the commit of the transaction that inserted its alert row (the engine's mark right
after that commit returns). Both are ``time.time()`` in this process. Also printed: where the time goes, per
stage of the engine (``workbench.rules.timing``: bus, queue, coalesce, evaluate, write, dispatch) over the
frames that raised the measured alerts, the first frame after each engine start, and the alert action's
announcement (``alert`` bus event) after the row's commit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psycopg
from sqlalchemy import insert, select

from ingest.pipeline import Pipeline
from ingest.points import Reading
from workbench.db.engine import libpq_url, make_engine
from workbench.db.tables import alerts, devices, rules
from workbench.live.bus import ALERT, EventBus
from workbench.platform import Platform
from workbench.rules.engine import RuleEngine
from workbench.rules.timing import STAGES, FrameTiming
from workbench.settings import Settings

DEVICES = 1000
SPIKERS = 20
KEYS = {"temperature": (50.0, 2.0), "pressure": (10.0, 0.5), "vibration": (1.0, 0.2), "flow": (100.0, 5.0)}
CHUNK = 1000
SPIKE_RULE = "bench-spike"
ENGINE_OPTIONS: dict[str, Any] = {}  # RuleEngine keyword arguments (--min-interval)


def make_devices(engine: Any) -> tuple[list[str], list[str]]:
    """1,000 plant devices (10 types x 10 areas) and the spike devices."""
    rows = [{"name": f"d{i}", "type": f"type{i % 10}", "area": f"area{i // 100}"} for i in range(DEVICES)]
    rows += [{"name": f"spike{i}", "type": "spiker", "area": "lab"} for i in range(SPIKERS)]
    with engine.begin() as conn:
        ids = [str(r.id) for r in conn.execute(insert(devices).returning(devices.c.id), rows)]
    return ids[:DEVICES], ids[DEVICES:]


def make_rules(engine: Any, plant: list[str]) -> int:
    """100 threshold + 20 comparison + 20 statistical rules, plus the spike rule used for latency."""
    keys = list(KEYS)
    made: list[dict[str, Any]] = []
    for i in range(100):
        key = keys[i % 4]
        mean, sd = KEYS[key]
        target = {"device_type": f"type{i % 10}"} if i % 2 else {"area": f"area{i % 10}"}
        condition = {"key": key, "operator": ">", "value": mean + 4.5 * sd, "duration_seconds": (i % 3) * 30}
        made.append({"type": "threshold", "condition": condition, "target": target})
    for i in range(20):
        condition = {
            "left": {"device": plant[2 * i], "key": "temperature"},
            "operator": ">",
            "right": {"device": plant[2 * i + 1], "key": "temperature"},
            "offset": 8,
        }
        made.append({"type": "comparison", "condition": condition, "target": None})
    functions = ["stddev", "mean", "range", "zscore", "rate_of_change"]
    for i in range(20):
        key = keys[2 + i % 2]
        mean, sd = KEYS[key]
        function = functions[i % 5]
        limit = {
            "stddev": 3 * sd,
            "mean": mean + 3 * sd,
            "range": 14 * sd,
            "zscore": 5.0,
            "rate_of_change": 10 * sd,
        }
        condition = {
            "key": key,
            "function": function,
            "window": "1m" if i % 2 else "5m",
            "operator": ">",
            "value": limit[function],
        }
        made.append(
            {"type": "statistical", "condition": condition, "target": {"device_type": f"type{i % 10}"}}
        )
    made.append(
        {
            "name": SPIKE_RULE,
            "type": "threshold",
            "condition": {"key": "spike", "operator": ">", "value": 0.5},
            "target": {"device_type": "spiker"},
        }
    )
    with engine.begin() as conn:
        conn.execute(
            insert(rules),
            [
                {
                    "name": f"bench-{n}",  # the spike rule names itself
                    "action": {"type": "alert", "severity": "warning"},
                    "cooldown_seconds": 0,
                    **r,
                }
                for n, r in enumerate(made)
            ],
        )
    return len(made) - 1


def readings(
    plant: list[str], first_round: int, rounds: int, base: datetime, seed: int
) -> list[list[Reading]]:
    """Chunks of readings: every device, every key, one point per round (a second of event time)."""
    rng = np.random.default_rng(seed)
    out: list[Reading] = []
    for r in range(first_round, first_round + rounds):
        at = base + timedelta(seconds=r)
        for key, (mean, sd) in KEYS.items():
            values = rng.normal(mean, sd, len(plant))
            out.extend(Reading(d, key, float(v), at) for d, v in zip(plant, values, strict=True))
    return [out[i : i + CHUNK] for i in range(0, len(out), CHUNK)]


def phase(
    settings: Settings,
    engine: Any,
    plant: list[str],
    spikers: list[str],
    first_round: int,
    rounds: int,
    base: datetime,
    with_rules: bool,
) -> dict[str, Any]:
    """Push the load through a fresh pipeline (and engine); return throughput and latencies."""
    chunks = readings(plant, first_round, rounds, base, seed=first_round)
    total = sum(len(c) for c in chunks)
    bus = EventBus()
    pipeline = Pipeline(settings, engine, bus)
    pipeline.start()
    rule_engine = (
        RuleEngine(Platform(settings=settings, engine=engine, bus=bus), **ENGINE_OPTIONS).start()
        if with_rules
        else None
    )
    # (spike device, event time) -> when the spike's point was committed (value 1.0 spikes only).
    committed_at: dict[tuple[str, datetime], float] = {}
    announced: dict[str, float] = {}
    bus.subscribe(ALERT, lambda topic, body: announced.setdefault(str(body["id"]), time.time()))
    wall_start = datetime.now(UTC)
    spikes = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    # Every spike device starts low, so each 1.0 spike of this phase raises an alert of its own (an alert
    # still open from an earlier phase would absorb the first one).
    pipeline.submit([Reading(d, "spike", 0.0, chunks[0][0].timestamp) for d in spikers], "bench")
    total += len(spikers)
    for n, chunk in enumerate(chunks):
        pipeline.submit(chunk, "bench")
        if n % 5 == 2:
            device = spikers[spikes % SPIKERS]
            value = 1.0 if (spikes // SPIKERS) % 2 == 0 else 0.0
            at = chunk[-1].timestamp

            def committed(device: str = device, value: float = value, at: datetime = at) -> None:
                if value > 0.5:
                    committed_at[(device, at)] = time.time()

            pipeline.submit([Reading(device, "spike", value, at)], "bench", committed)
            total += 1
            spikes += 1
    while pipeline.writer.committed_points < total:
        time.sleep(0.002)
    ingest_s = time.perf_counter() - start
    # The writer counts points before it publishes their batch: stopping it first puts every batch on the bus.
    pipeline.stop()
    drained_s = ingest_s
    frames: list[FrameTiming] = []
    if rule_engine is not None:
        rule_engine.idle(120)
        drained_s = time.perf_counter() - start
        rule_engine.stop()
        frames = list(rule_engine.timings.frames)
    # CPU of this process (submit, writer, engine, actions) per 1,000 points, until the rules are drained:
    # less sensitive to the machine's other load than points/s.
    cpu_per_1000 = 1e6 * (time.process_time() - cpu_start) / total
    measured = _row_latencies(engine, committed_at, frames, announced, wall_start) if with_rules else []
    lat = np.array([m["latency"] for m in measured if m["latency"] is not None]) * 1000
    return {
        "spikes_without_alert": sum(m["latency"] is None for m in measured),
        "latencies_ms": lat,
        "measured": measured,
        "frames": frames,
        "points": total,
        "ingest_seconds": round(ingest_s, 3),
        "points_per_s": round(total / ingest_s),
        "rules_drained_seconds": round(drained_s, 3),
        "cpu_ms_per_1000_points": round(cpu_per_1000, 2),
        "alerts_measured": len(lat),
    }


def _row_latencies(
    engine: Any,
    committed_at: dict[tuple[str, datetime], float],
    frames: list[FrameTiming],
    announced: dict[str, float],
    since: datetime,
) -> list[dict[str, Any]]:
    """Per spike: seconds from its commit to its alert row's commit (None: no alert), the frame's stages."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(alerts.c.id, alerts.c.device_id, alerts.c.triggered_at)
            .join(rules, rules.c.id == alerts.c.rule_id)
            .where(rules.c.name == SPIKE_RULE, alerts.c.created_at >= since)
        ).all()
    frame_of = {alert: f for f in frames for alert in f.alerts}
    # An alert belongs to the spike of its device and trigger (event) time.
    alert_of = {(str(device), when): str(alert) for alert, device, when in rows}
    out = []
    for spike, done in committed_at.items():
        alert = alert_of.get(spike)
        frame = frame_of.get(alert) if alert else None
        if frame is None:
            out.append({"latency": None, "stages": None, "announce": None})
            continue
        out.append(
            {
                "latency": frame.written - done,
                "stages": frame.stages(),
                "announce": announced[alert] - frame.written if alert in announced else None,
            }
        )
    return out


def stage_table(measured: list[dict[str, Any]], firsts: list[FrameTiming]) -> dict[str, Any]:
    """p50/p99/max ms per stage over the frames of the measured alerts; the first frames after start."""
    table: dict[str, Any] = {}
    for name in (*STAGES, "announce"):
        column = [
            (m["announce"] if name == "announce" else m["stages"][name]) * 1000
            for m in measured
            if name != "announce" or m["announce"] is not None
        ]
        if column:
            table[name] = {
                "p50": round(float(np.percentile(column, 50)), 1),
                "p99": round(float(np.percentile(column, 99)), 1),
                "max": round(float(max(column)), 1),
            }
    return {
        "alert_frames": table,
        "first_frame_after_start_ms": [
            {k: round(v * 1000, 1) for k, v in f.stages().items()} | {"points": f.points} for f in firsts
        ],
    }


def main() -> None:
    """Run both phases on a scratch database and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument(
        "--rounds", type=int, default=100, help="seconds of event time per phase (4,000 points each)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="alternating no-rules/rules phase pairs")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument(
        "--min-interval", type=float, help="seconds between evaluations (default: the engine's)"
    )
    args = parser.parse_args()
    if args.min_interval is not None:
        ENGINE_OPTIONS["min_interval"] = args.min_interval
    from sqlalchemy.engine import make_url

    from workbench.db.embedded import ensure_database
    from workbench.db.migrate import upgrade

    name = f"wb_bench_rules_{uuid.uuid4().hex[:8]}"
    ensure_database(args.database_url, name)
    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        settings = Settings.from_env(
            {}, database_url=url, data_dir=Path(tempfile.mkdtemp()), ingest_mqtt=False
        )
        engine = make_engine(url)
        plant, spikers = make_devices(engine)
        count = make_rules(engine, plant)
        # Event time ends near wall-clock time, as live data does (the engine warms windows ending now).
        span = 10 + 2 * args.repeat * args.rounds
        base = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=span)
        # Warm-up (caches, pools, imports), then no-rules and rules phases alternating (the machine's
        # background load varies: medians of alternating runs are fairer than one run of each).
        phase(settings, engine, plant, spikers, 0, 5, base, with_rules=True)
        bares, ruleds = [], []
        for n in range(args.repeat):
            first = 10 + 2 * n * args.rounds
            bares.append(phase(settings, engine, plant, spikers, first, args.rounds, base, with_rules=False))
            ruleds.append(
                phase(settings, engine, plant, spikers, first + args.rounds, args.rounds, base, True)
            )
        engine.dispose()
    finally:
        with psycopg.connect(libpq_url(args.database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    bare_rate = float(np.median([b["points_per_s"] for b in bares]))
    ruled_rate = float(np.median([r["points_per_s"] for r in ruleds]))
    drop = 1 - ruled_rate / bare_rate
    lat = np.concatenate([r["latencies_ms"] for r in ruleds])
    measured = [m for r in ruleds for m in r["measured"] if m["latency"] is not None]
    evaluations = np.array([f.evaluated - f.started for r in ruleds for f in r["frames"]]) * 1000
    # Load-independent cost: CPU seconds of the evaluation thread per 1,000 points evaluated.
    engine_cpu = sum(f.cpu for r in ruleds for f in r["frames"])
    evaluated = sum(f.points for r in ruleds for f in r["frames"])
    # The first frame with points after each start (a frame without points: a history load finished).
    firsts = [next((f for f in r["frames"] if f.points), None) for r in ruleds]
    stages = stage_table(measured, [f for f in firsts if f is not None])
    result = {
        "devices": DEVICES,
        "rules": count,
        "points_per_phase": bares[0]["points"],
        "repeats": args.repeat,
        "no_rules_points_per_s": round(bare_rate),
        "no_rules_cpu_ms_per_1000_points": float(np.median([b["cpu_ms_per_1000_points"] for b in bares])),
        "rules_cpu_ms_per_1000_points": float(np.median([r["cpu_ms_per_1000_points"] for r in ruleds])),
        "rules_points_per_s": round(ruled_rate),
        "throughput_drop": round(drop, 3),
        "pairwise_drops": [
            round(1 - r["points_per_s"] / b["points_per_s"], 3) for b, r in zip(bares, ruleds, strict=True)
        ],
        "alerts_measured": len(lat),
        "spikes_without_alert": sum(r["spikes_without_alert"] for r in ruleds),
        "p50_commit_to_alert_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "p99_commit_to_alert_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "max_commit_to_alert_ms": round(float(lat.max()), 1) if len(lat) else None,
        "evaluations": len(evaluations),
        "evaluate_ms_p50": round(float(np.percentile(evaluations, 50)), 1) if len(evaluations) else None,
        "evaluate_ms_max": round(float(evaluations.max()), 1) if len(evaluations) else None,
        "engine_cpu_ms_per_1000_points": round(1e6 * engine_cpu / evaluated, 2) if evaluated else None,
        "stages_ms": stages,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"devices {DEVICES}, rules {count} (100 threshold, 20 comparison, 20 statistical), "
        f"{result['points_per_phase']:,} points per phase, {args.repeat} alternating repeats (medians)"
    )
    print(f"{'':32}{'no rules':>12}{'rules':>12}")
    print(f"{'ingest points/s':32}{round(bare_rate):>12,}{round(ruled_rate):>12,}")
    print(
        f"{'process CPU ms per 1,000 points':32}{result['no_rules_cpu_ms_per_1000_points']:>12}"
        f"{result['rules_cpu_ms_per_1000_points']:>12}"
    )
    print(f"throughput drop with rules: {drop:.1%} (target <= 20%); per pair {result['pairwise_drops']}")
    print(
        f"commit -> alert row over {len(lat)} alerts: p50 {result['p50_commit_to_alert_ms']} ms, "
        f"p99 {result['p99_commit_to_alert_ms']} ms, max {result['max_commit_to_alert_ms']} ms "
        f"(target p99 < 1000 ms); spikes without an alert: {result['spikes_without_alert']}"
    )
    print(
        f"evaluations {result['evaluations']}: p50 {result['evaluate_ms_p50']} ms, "
        f"max {result['evaluate_ms_max']} ms; evaluation thread CPU "
        f"{result['engine_cpu_ms_per_1000_points']} ms per 1,000 points"
    )
    print("stages of the frames that raised the measured alerts, ms (see workbench/rules/timing.py):")
    print(f"  {'stage':12}{'p50':>10}{'p99':>10}{'max':>10}")
    for name, row in stages["alert_frames"].items():
        print(f"  {name:12}{row['p50']:>10}{row['p99']:>10}{row['max']:>10}")
    print("first frame of points after each engine start, ms:")
    for first in stages["first_frame_after_start_ms"]:
        print("  " + ", ".join(f"{k} {v}" for k, v in first.items()))
    print(f"load average at the end: {result['load_average']}")


if __name__ == "__main__":
    main()
