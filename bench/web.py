"""Web tier: requests/s and p99 of latest values and a chart series, and Socket.IO fan-out to 500 clients,
with one `workbench web` process and with three behind nginx (HTTPS), in the same run.

Run: ``.venv/bin/python bench/web.py`` (the machine's PostgreSQL at 127.0.0.1:5432 unless ``--server``
names another, in a fresh ``workbench_web_<random>`` database dropped at the end; its own Redis, web
processes and nginx on free ports; nginx must be installed).

HTTP: ``--threads`` client threads with keep-alive sessions for ``--seconds`` each on
``GET /api/v1/telemetry/latest`` (100 devices) and ``GET /api/v1/telemetry/downsample`` (one day at 1 Hz to
500 points). The client runs on the same 2 cores as the servers, so both setups share the machine with it.

Fan-out: ``--clients`` Socket.IO clients (WebSocket) subscribed to one device; a publisher POSTs one point
every 0.2 s to the web processes in turn, its value the send time; each client records arrival minus send
(one clock). Behind nginx the clients come from 127.0.0.2.. addresses, so nginx's address hash spreads them
over the three processes, and the Redis bridge brings each point to all three.
"""

from __future__ import annotations

import argparse
import itertools
import socket
import ssl
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import socketio
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.workbench.web.cluster import nginx
from tests.workbench.web.processes import redis_server, start_web, web_env
from workbench.auth import api_keys, tokens
from workbench.auth.users import create_user
from workbench.db.embedded import scratch_database
from workbench.db.engine import make_engine
from workbench.db.rollups import rebuild

SECRET = "deployment-tests-secret-key-of-enough-length"  # what web_env gives every process
DEVICES = 100


def seed(url: str) -> tuple[list[str], str, str, str]:
    """Devices with latest values, a chart key with a day at 1 Hz; returns (ids, chart device, key, token)."""
    engine = make_engine(url, pool_size=1)
    with engine.begin() as conn:
        ids = [
            str(row[0])
            for row in conn.execute(
                text(
                    "INSERT INTO devices (name, type, area, protocol) "
                    "SELECT 'bench-' || n, 'sensor', 'bench', 'http' FROM generate_series(1, :n) n "
                    "RETURNING id"
                ),
                {"n": DEVICES},
            )
        ]
        conn.execute(
            text(
                "INSERT INTO telemetry (timestamp, device_id, key, value) "
                "SELECT now() - make_interval(secs => s), CAST(:device AS uuid), 'flow', sin(s / 600.0) "
                "FROM generate_series(1, 86400) s"
            ),
            {"device": ids[0]},
        )
        conn.execute(
            text(
                "INSERT INTO latest_values (device_id, key, timestamp, value) "
                "SELECT id, k, now(), random() FROM devices, unnest(ARRAY['flow', 'level', 'temp']) k"
            )
        )
    # SQL-generated rows bypass the ingest path that keeps the minute/hour rollups: build them once.
    now = datetime.now(UTC)
    rebuild(engine, now - timedelta(days=2), now + timedelta(hours=1))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE telemetry"))
    email = f"bench-{uuid.uuid4().hex[:6]}@example.com"
    user = create_user(engine, email, "admin", "bench password of some length")
    _, key = api_keys.create_key(engine, uuid.UUID(ids[1]), "bench", rate_limit=10_000_000)
    engine.dispose()
    token = tokens.issue(SECRET, user, "admin", email)
    return ids, ids[1], key, token


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load(
    base: str, verify: str | bool, path: str, token: str, threads: int, seconds: float
) -> tuple[float, float]:
    """(requests/s, p99 ms) of GET ``path`` from ``threads`` keep-alive clients for ``seconds``."""
    latencies: list[float] = []
    errors = [0]
    first: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        http = requests.Session()
        http.trust_env = False
        http.verify = verify
        http.headers["Authorization"] = f"Bearer {token}"
        mine: list[float] = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = http.get(base + path, timeout=30)
            mine.append(time.perf_counter() - started)
            if answer.status_code != 200:
                errors[0] += 1
                if not first:
                    first.append(f"{answer.status_code} {answer.text[:200]}")
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed = time.monotonic() - started
    if errors[0]:
        print(f"    ({errors[0]} non-200 answers, the first: {first[0]})")
    return len(latencies) / elapsed, percentile(latencies, 0.99) * 1000


class Receiver:
    """One Socket.IO client (WebSocket only) that stamps each telemetry event's arrival."""

    def __init__(self, base: str, token: str, device: str, source: str | None, ca: str | None) -> None:
        self.delays: list[float] = []
        options: dict[str, object] = {}
        if source is not None:  # a pre-connected socket from a chosen loopback address
            host, port = base.split("//")[1].split(":")
            sock = socket.create_connection((host, int(port)), source_address=(source, 0))
            if ca is not None:  # websocket-client uses a given socket as it is: TLS is ours to add
                sock = ssl.create_default_context(cafile=ca).wrap_socket(sock, server_hostname=host)
            options["socket"] = sock
        elif ca is not None:
            options["sslopt"] = {"ca_certs": ca, "cert_reqs": ssl.CERT_REQUIRED}
        self.client = socketio.Client(reconnection=False, websocket_extra_options=options)
        self.client.on("telemetry", self._on_telemetry)
        self.client.connect(base, auth={"token": token}, transports=["websocket"], wait_timeout=30)
        answer = self.client.call("subscribe", {"type": "device", "device_id": device}, timeout=30)
        assert answer["ok"], answer

    def _on_telemetry(self, data: dict[str, float]) -> None:
        self.delays.append(time.time() - float(data["value"]))


def fan_out(
    base: str, posts: list[str], ca: str | None, token: str, device: str, key: str, clients: int, spread: bool
) -> tuple[float, float, float]:
    """(p50 ms, p99 ms, delivered share) of POST -> event at ``clients`` receivers."""
    sources = (f"127.0.0.{2 + n % 250}" for n in itertools.count()) if spread else itertools.repeat(None)
    receivers = [Receiver(base, token, device, next(sources), ca) for _ in range(clients)]
    http = requests.Session()
    http.trust_env = False
    sent = 0
    for index in range(50):
        target = posts[index % len(posts)]
        http.post(
            f"{target}/api/v1/telemetry",
            json={"key": "probe", "value": time.time()},
            headers={"X-API-Key": key},
            timeout=30,
        )
        sent += 1
        time.sleep(0.2)
    time.sleep(2)
    delays = [d for r in receivers for d in r.delays]
    for receiver in receivers:
        receiver.client.disconnect()
    return percentile(delays, 0.5) * 1000, percentile(delays, 0.99) * 1000, len(delays) / (sent * clients)


def run_setup(
    label: str,
    base: str,
    posts: list[str],
    verify: str | bool,
    ids: list[str],
    probe: str,
    key: str,
    token: str,
    args: argparse.Namespace,
    spread: bool,
) -> None:
    """Print one setup's figures."""
    end = datetime.now(UTC)
    latest = "/api/v1/telemetry/latest?" + "&".join(f"device_id={d}" for d in ids[:DEVICES])
    chart = (
        f"/api/v1/telemetry/downsample?device_id={ids[0]}&key=flow&points=500"
        f"&start={(end - timedelta(days=1)).isoformat().replace('+00:00', 'Z')}"
        f"&end={end.isoformat().replace('+00:00', 'Z')}"
    )
    print(f"{label}")
    for name, path in (
        ("latest values (100 devices)", latest),
        ("chart (1 day at 1 Hz -> 500 points)", chart),
    ):
        rate, p99 = load(base, verify, path, token, args.threads, args.seconds)
        print(f"  {name:38s} {rate:8.0f} req/s   p99 {p99:7.1f} ms")
    ca = verify if isinstance(verify, str) else None
    p50, p99, share = fan_out(base, posts, ca, token, probe, key, args.clients, spread)
    print(
        f"  Socket.IO fan-out to {args.clients} clients     p50 {p50:6.1f} ms   p99 {p99:7.1f} ms   "
        f"delivered {share:.1%}"
    )


def main() -> None:
    """Measure both setups in one run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    data = Path(f"/tmp/workbench-bench-web-{uuid.uuid4().hex[:6]}")
    with scratch_database(args.server, "workbench_web") as url, redis_server() as redis_url:
        ids, probe, key, token = seed(url)
        env = web_env(
            url,
            data,
            WORKBENCH_REDIS_URL=redis_url,
            WORKBENCH_TRUSTED_PROXIES="1",
            WORKBENCH_WEB_ACCESS_LOG="false",
            WORKBENCH_LOG_LEVEL="WARNING",
        )
        one = start_web(env)
        try:
            run_setup(
                "one web process (HTTP, direct)",
                one.url,
                [one.url],
                False,
                ids,
                probe,
                key,
                token,
                args,
                spread=False,
            )
        finally:
            one.stop()
        webs = [start_web(env, *(["--scheduler"] if n == 0 else [])) for n in range(3)]
        try:
            with nginx([w.port for w in webs]) as (_, https_port, ca):
                base = f"https://127.0.0.1:{https_port}"
                run_setup(
                    "three web processes behind nginx (HTTPS)",
                    base,
                    [w.url for w in webs],
                    str(ca),
                    ids,
                    probe,
                    key,
                    token,
                    args,
                    spread=True,
                )
        finally:
            for web in webs:
                web.stop()


if __name__ == "__main__":
    main()
