"""Ingest benchmark: real Mosquitto + PostgreSQL, end-to-end points/s against limits measured in the same run.

    .venv/bin/python bench/ingest.py [--database-url URL] [--messages N] [--json]
    .venv/bin/python bench/ingest.py --platform [--rules [on|both]] [--http] [--messages N] [--json]

Starts its own Mosquitto (the config ``workbench up`` uses) on a free port and a scratch database on the
server named by ``--database-url`` (default: the machine's PostgreSQL), dropped at the end. Publishers and
the two limits (binary COPY, bare paho subscriber) are in ``bench/ingest_limits.py`` and run in the same
run. End to end means from the first publish to the last committed row. ``*_cpu_us_per_*`` figures are
this process's CPU time per point (the publishers and HTTP client run in other processes): unlike the
rates, they hardly depend on what else the machine runs, so compare those across loaded runs.

``--platform`` measures ``workbench up`` as its own process under an external load instead
(``bench/platform_ingest.py`` says how).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench.ingest_limits import (
    RawPublisher,
    broker_limit,
    copy_limit,
    publish_burst,
    publish_paced,
    publish_packet,
    run_publisher,
)
from bench.platform_ingest import add_arguments
from bench.platform_ingest import run as run_platform

DEVICES = 100


def mqtt_end_to_end(
    service: Any, mqtt_url: str, devices: list[str], count: int, points: int
) -> tuple[float, float]:
    """Points/s from the first publish to the last committed row, and ingest CPU microseconds per point.

    The CPU figure (this process's user + system time; publishers run in other processes) does not
    depend on what else the machine runs: 1e6 / it is the rate one core could sustain.
    """
    from workbench.mqtt import host_port

    host, port = host_port(mqtt_url)
    writer = service.pipeline.writer
    before = writer.committed_points
    expected = before + count * points
    process, queue = run_publisher(publish_burst, host, port, devices, count, points)
    queue.put("go")
    cpu_before = time.process_time()
    started = queue.get(timeout=60)
    deadline = time.time() + 300
    while writer.committed_points < expected and time.time() < deadline:
        time.sleep(0.005)
    finished = time.time()
    cpu = time.process_time() - cpu_before
    process.join(10)
    done = writer.committed_points - before
    return done / (finished - started), cpu * 1e6 / max(done, 1)


def mqtt_workers(url: str, mqtt_url: str, devices: list[str], count: int, workers: int) -> float:
    """Points/s of 10-point messages into ``python -m ingest --workers N`` (shared subscription)."""
    import subprocess

    from workbench.mqtt import host_port

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "WORKBENCH_DATABASE_URL": url,
        "WORKBENCH_MQTT_URL": mqtt_url,
        "WORKBENCH_INGEST_CLIENT_ID": f"bench-workers-{uuid.uuid4().hex[:6]}",
        "WORKBENCH_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "ingest", "--workers", str(workers)], env=env, cwd=root)
    host, port = host_port(mqtt_url)

    def rows() -> int:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT count(*) FROM telemetry WHERE device_id = ANY(%s::uuid[])", (devices,)
            )
            return int(found.fetchone()[0])  # type: ignore[index]

    try:
        probe = RawPublisher(host, port)
        deadline = time.time() + 120
        while rows() == 0 and time.time() < deadline:  # every worker subscribed: the probes get stored
            probe.send(publish_packet(f"insa/devices/{devices[0]}/telemetry/probe", b"1", 1))
            time.sleep(0.5)
        time.sleep(3.0)
        before = rows()
        publisher, channel = run_publisher(publish_burst, host, port, devices, count, 10)
        channel.put("go")
        started = channel.get(timeout=60)
        expected = before + count * 10
        deadline = time.time() + 300
        while (done := rows()) < expected and time.time() < deadline:
            time.sleep(0.2)
        finished = time.time()
        publisher.join(10)
        return (done - before) / (finished - started)
    finally:
        process.terminate()
        process.wait(30)


def latency(
    service: Any, mqtt_url: str, devices: list[str], rate: int, seconds: float
) -> tuple[float, float]:
    """p50 and p99 publish-to-commit latency (ms) at ``rate`` points/s of 10-point messages."""
    import numpy as np

    from workbench.live.bus import TELEMETRY_BATCH
    from workbench.mqtt import host_port

    host, port = host_port(mqtt_url)
    samples: list[Any] = []

    begun = time.time()

    def on_batch(topic: str, batch: Any) -> None:
        committed = batch.committed_at.timestamp()
        stamps = batch.frame["timestamp"].astype("int64").to_numpy() / 1e9
        samples.append(committed - stamps[stamps >= begun])  # only this phase's (time-stamped) points

    unsubscribe = service.bus.subscribe(TELEMETRY_BATCH, on_batch)
    process, queue = run_publisher(publish_paced, host, port, devices, seconds, rate)
    queue.put("go")
    queue.get(timeout=seconds + 60)
    time.sleep(1.0)
    unsubscribe()
    process.join(10)
    values = np.concatenate(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def http_batches(app_url: str, api_key: str, device: str, batches: int, workers: int) -> float:
    """Points/s of POST /api/v1/telemetry with 1,000-point JSON batches from ``workers`` client threads."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_http_client, args=(app_url, api_key, device, batches, workers, queue))
    process.start()
    points, elapsed = queue.get(timeout=600)
    process.join(10)
    return float(points / elapsed)


def _http_client(app_url: str, api_key: str, device: str, batches: int, workers: int, queue: Any) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(app_url)
    body = json.dumps(
        [{"key": f"h{i % 10}", "value": i * 0.5, "timestamp": 1767225600 + i} for i in range(1000)]
    ).encode()
    accepted = [0]
    lock = threading.Lock()

    def work(count: int) -> None:
        for _ in range(count):
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
            conn.request(
                "POST", "/api/v1/telemetry", body, {"X-API-Key": api_key, "Content-Type": "application/json"}
            )
            answer = json.loads(conn.getresponse().read())
            conn.close()
            with lock:
                accepted[0] += answer.get("accepted", 0)

    threads = [threading.Thread(target=work, args=(batches // workers,)) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((accepted[0], time.perf_counter() - started))


# --- orchestration ------------------------------------------------------------------------------


def main() -> None:
    """Run every phase and print the table (or one JSON line)."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument(
        "--messages", type=int, default=100_000, help="1-point messages per MQTT run (--platform: 10-point)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line (--platform: one a measure)")
    add_arguments(parser)
    args = parser.parse_args()
    if args.platform:
        run_platform(args)
        return

    from ingest.broker import LocalBroker
    from ingest.service import IngestService
    from tests.conftest import free_port
    from workbench.auth import api_keys
    from workbench.db.embedded import ensure_database
    from workbench.db.engine import libpq_url, make_engine
    from workbench.db.migrate import upgrade
    from workbench.live.bus import EventBus
    from workbench.settings import Settings

    name = f"wb_bench_{uuid.uuid4().hex[:8]}"
    ensure_database(args.database_url, name)
    from sqlalchemy.engine import make_url

    url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    folder = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    folder.chmod(0o755)  # Mosquitto drops to its own user and keeps its persistence file here
    broker = LocalBroker(free_port(), folder, allow_anonymous=True)  # the bench's clients
    mqtt_url = broker.start()
    engine = make_engine(url)
    results: dict[str, Any] = {}
    service = None
    try:
        ids = _make_devices(engine, "bench")
        _, api_key = api_keys.create_key(engine, uuid.UUID(ids[0]), "bench", rate_limit=10**9)
        results["load_average_1min_start"] = os.getloadavg()[0]
        results["copy_limit_rows_per_s"] = copy_limit(libpq_url(url), 500_000)
        rate, cpu = broker_limit(mqtt_url, ids, args.messages)
        results["broker_limit_msgs_per_s"], results["broker_limit_cpu_us_per_msg"] = rate, cpu
        settings = Settings.from_env(
            {}, database_url=url, mqtt_url=mqtt_url, data_dir=Path(tempfile.mkdtemp())
        )
        settings = replace(settings, ingest_client_id=f"bench-ingest-{uuid.uuid4().hex[:6]}")
        service = IngestService(settings, engine, EventBus())
        service.start()
        rate, cpu = mqtt_end_to_end(service, mqtt_url, ids, args.messages, 1)
        results["mqtt_1pt_points_per_s"], results["mqtt_1pt_cpu_us_per_point"] = rate, cpu
        rate, cpu = mqtt_end_to_end(service, mqtt_url, ids, args.messages // 2, 10)
        results["mqtt_10pt_points_per_s"], results["mqtt_10pt_cpu_us_per_point"] = rate, cpu
        p50, p99 = latency(service, mqtt_url, ids, 10_000, 10.0)
        results["p50_publish_to_commit_ms"] = p50
        results["p99_publish_to_commit_ms"] = p99
        rate, cpu = _http_phase(settings, service, ids[0], api_key)
        results["http_batch_points_per_s"], results["http_batch_cpu_us_per_point"] = rate, cpu
        service.stop()
        service = None
        fresh = _make_devices(engine, "bench-w")
        results["mqtt_10pt_2_workers_points_per_s"] = mqtt_workers(
            url, mqtt_url, fresh, args.messages // 2, 2
        )
        results["load_average_1min"] = os.getloadavg()[0]
        results["mqtt_1pt_ratio_to_broker"] = (
            results["mqtt_1pt_points_per_s"] / results["broker_limit_msgs_per_s"]
        )
    finally:
        if service is not None:
            service.stop()
        broker.stop()
        engine.dispose()
        with psycopg.connect(libpq_url(args.database_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
        return
    print(f"{'measure':<34} {'value':>14}")
    for key, value in results.items():
        print(f"{key:<34} {value:>14,.1f}")


def _make_devices(engine: Any, prefix: str) -> list[str]:
    """``DEVICES`` new sensor devices named ``prefix-N``; their ids."""
    from sqlalchemy import insert

    from workbench.db.tables import devices

    rows = [{"name": f"{prefix}-{i}", "type": "sensor"} for i in range(DEVICES)]
    with engine.begin() as conn:
        return [
            str(device_id)
            for device_id in conn.execute(insert(devices).returning(devices.c.id), rows).scalars()
        ]


def _http_phase(settings: Any, service: Any, device: str, api_key: str) -> tuple[float, float]:
    """Points/s of the HTTP phase, and this process's CPU microseconds per committed point."""
    from werkzeug.serving import make_server

    from app import create_app
    from tests.conftest import free_port
    from workbench.platform import EXTENSION

    app = create_app(settings, bus=service.bus)
    platform = app.extensions[EXTENSION]
    platform.services.pipeline = service.pipeline  # one writer, as in `workbench up`
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    writer = service.pipeline.writer
    before, cpu_before = writer.committed_points, time.process_time()
    try:
        rate = http_batches(f"http://127.0.0.1:{port}", api_key, device, 200, 4)
    finally:
        server.shutdown()
    cpu = time.process_time() - cpu_before
    return rate, cpu * 1e6 / max(writer.committed_points - before, 1)


if __name__ == "__main__":
    main()
