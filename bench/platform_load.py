"""The external load of ``bench/ingest.py --platform``: design-format messages, a windowed QoS 1 publisher,
HTTP batch clients, the check of the stored rows against what was sent, and CPU accounting of process trees.

Every message and point is derived from a seed, so the publisher (another process), the data check and the
COPY limit see the same rows without passing them around.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench.ingest_limits import RawPublisher, publish_packet

KEYS = [f"k{i}" for i in range(10)]
UNITS = ["C", "bar", "V", "A", "rpm", "%", "Hz", "kW", "m3/h", "mm"]
Reading = tuple[datetime, str, list[tuple[str, float, str]], int]


def device_ids(count: int, seed: int) -> list[str]:
    """``count`` device UUIDs derived from ``seed``."""
    rnd = random.Random(seed)
    return [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(count)]


def readings(
    devices: list[str], count: int, seed: int, base: datetime, vary_quality: bool = True
) -> Iterator[Reading]:
    """``count`` ten-point readings: device ``i % len(devices)``, each device once a second from ``base``."""
    rnd = random.Random(seed)
    n = len(devices)
    for i in range(count):
        stamp = base + timedelta(seconds=i // n, milliseconds=(i % n) * 7)
        values = [(KEYS[k], round(rnd.uniform(-100.0, 100.0), 3), UNITS[k]) for k in range(10)]
        yield stamp, devices[i % n], values, (100 - i % 3) if vary_quality else 100


def iso_ms(stamp: datetime) -> str:
    """``2026-01-01T00:00:00.007Z``."""
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def design_message(reading: Reading) -> tuple[str, bytes]:
    """Topic and JSON payload of one reading in the design's message format."""
    stamp, device, values, quality = reading
    body = {
        "timestamp": iso_ms(stamp),
        "device_id": device,
        "telemetry": {key: {"value": value, "unit": unit} for key, value, unit in values},
        "metadata": {"quality": quality},
    }
    return f"insa/devices/{device}/telemetry", json.dumps(body, separators=(",", ":")).encode()


def copy_data(source: Iterator[Reading]) -> list[tuple[Any, ...]]:
    """The telemetry rows (``ingest.validation.COPY_COLUMNS`` order) the readings become."""
    return [
        (stamp, uuid.UUID(device), key, value, unit, quality, None, None)
        for stamp, device, values, quality in source
        for key, value, unit in values
    ]


@dataclass
class Summary:
    """What the stored rows must add up to."""

    rows: int = 0
    value_sum: float = 0.0
    quality_sum: int = 0
    devices: int = 0
    ts_min: datetime | None = None
    ts_max: datetime | None = None


def summarize(source: Iterator[Reading]) -> Summary:
    """Counts, sums, distinct devices and time range of the readings."""
    out, seen = Summary(), set()
    for stamp, device, values, quality in source:
        out.rows += len(values)
        out.value_sum += sum(value for _, value, _ in values)
        out.quality_sum += quality * len(values)
        seen.add(device)
        out.ts_min = stamp if out.ts_min is None or stamp < out.ts_min else out.ts_min
        out.ts_max = stamp if out.ts_max is None or stamp > out.ts_max else out.ts_max
    out.devices = len(seen)
    return out


def check_rows(conn: Any, want: Summary) -> str:
    """``ok``, or ``MISMATCH`` naming what differs between the telemetry table and ``want``."""
    row = conn.execute(
        "SELECT count(*), sum(value), sum(quality), count(DISTINCT device_id), min(timestamp), "
        "max(timestamp), count(DISTINCT key), count(unit) FROM telemetry"
    ).fetchone()
    got = Summary(row[0], row[1] or 0.0, row[2] or 0, row[3], row[4], row[5])
    bad = [
        name
        for name in ("rows", "quality_sum", "devices", "ts_min", "ts_max")
        if getattr(got, name) != getattr(want, name)
    ]
    if abs(got.value_sum - want.value_sum) > 1e-6 * max(1.0, abs(want.value_sum)) + 1e-3:
        bad.append("value_sum")
    shown = [f"{name}: got {getattr(got, name)} want {getattr(want, name)}" for name in bad]
    if row[6] != len(KEYS) or row[7] != row[0]:
        shown.append(f"keys/units: {row[6]} keys, {row[7]} units for {row[0]} rows")
    if got.rows != want.rows:  # where the difference lies: rows stored twice, or rows of another run
        twice, other = conn.execute(
            "SELECT count(*) - count(DISTINCT (device_id, key, timestamp)), "
            "count(*) FILTER (WHERE timestamp NOT BETWEEN %s AND %s) FROM telemetry",
            (want.ts_min, want.ts_max),
        ).fetchone()
        shown.append(f"{twice} rows stored twice, {other} rows outside the run's time range")
    return "ok" if not shown else "MISMATCH " + ", ".join(shown)


# --- the MQTT publisher (another process) -------------------------------------------------------


class WindowedPublisher(RawPublisher):
    """A raw QoS 1 publisher that keeps at most ``window`` publishes unacknowledged; notes the last PUBACK."""

    def __init__(self, host: str, port: int, window: int) -> None:
        self.window = window
        self.last_ack = 0.0
        self._bytes = 0
        self._acks = threading.Condition()
        super().__init__(host, port)

    def _drain(self) -> None:
        while data := self.sock.recv(65536):
            with self._acks:
                self._bytes += len(data)  # PUBACKs are 4 bytes each; a read may split one
                self.acked = self._bytes // 4
                self.last_ack = time.time()
                self._acks.notify()

    def send_all(self, packets: list[bytes], stall: float = 120.0) -> None:
        """Send every packet, never more than ``window`` awaiting PUBACK, and wait for all PUBACKs."""
        first, sent, total = self.acked, 0, len(packets)
        while sent < total:
            with self._acks:  # top the window up in chunks of a tenth: one write, not one per message
                while (room := self.window - (sent - (self.acked - first))) < min(
                    max(1, self.window // 10), total - sent
                ):
                    self._wait(stall)
            step = min(room, total - sent)
            self.sock.sendall(b"".join(packets[sent : sent + step]))
            sent += step
        with self._acks:
            while self.acked - first < total:
                self._wait(stall)

    def _wait(self, stall: float) -> None:
        """Wait for PUBACKs (holding ``_acks``); fail when none came for ``stall`` seconds."""
        if not self._acks.wait(stall):
            raise TimeoutError(f"no PUBACK for {stall:.0f} s")


def _packets(source: Iterator[Reading]) -> list[bytes]:
    return [publish_packet(*design_message(r), i % 65535 + 1) for i, r in enumerate(source)]


def publish_phase(
    host: str,
    port: int,
    devices: list[str],
    count: int,
    warmup: int,
    seed: int,
    base: datetime,
    window: int,
    channel: Any,
) -> None:
    """Child process: build warm-up and measured packets; send the warm-up on "warmup", the rest on "go".

    Answers "warm" after the warm-up's PUBACKs, and at the end ``{started, last_ack, acked, cpu_seconds}``.
    """
    warm_base = base - timedelta(seconds=warmup // len(devices) + 1)
    warm = _packets(readings(devices, warmup, seed + 1000, warm_base))
    measured = _packets(readings(devices, count, seed, base))
    publisher = WindowedPublisher(host, port, window)
    channel.put("ready")
    assert channel.get() == "warmup"
    publisher.send_all(warm)
    channel.put("warm")
    assert channel.get() == "go"
    cpu = time.process_time()
    started = time.time()
    publisher.send_all(measured)
    channel.put(
        {
            "started": started,
            "last_ack": publisher.last_ack,
            "acked": publisher.acked - len(warm),
            "cpu_seconds": time.process_time() - cpu,
        }
    )


# --- HTTP batch clients (other processes) ------------------------------------------------------


def http_readings(device: str, batches: int, seed: int, base: datetime) -> Iterator[Reading]:
    """A client's readings: 100 ten-point readings (1,000 points) a batch; quality left to the default."""
    return readings([device], batches * 100, seed, base, vary_quality=False)


def http_client(
    url: str, api_key: str, device: str, batches: int, seed: int, base: datetime, channel: Any
) -> None:
    """Child process: POST ``batches`` bodies of 1,000 points on one keep-alive connection on "go"."""
    from urllib.parse import urlsplit

    rows = [
        {"key": key, "value": value, "unit": unit, "timestamp": iso_ms(stamp)}
        for stamp, _, values, _ in http_readings(device, batches, seed, base)
        for key, value, unit in values
    ]
    bodies = [json.dumps(rows[i : i + 1000]).encode() for i in range(0, len(rows), 1000)]
    parts = urlsplit(url)
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    channel.put("ready")
    assert channel.get() == "go"
    accepted, failures = 0, []
    started = time.time()
    for body in bodies:
        try:
            conn.request("POST", "/api/v1/telemetry", body, headers)
            answer = conn.getresponse()
            text = answer.read()
        except (OSError, http.client.HTTPException) as error:
            failures.append(repr(error))
            conn.close()
            continue
        if answer.status == 200:
            accepted += json.loads(text)["accepted"]
        else:
            failures.append(f"{answer.status} {text[:200]!r}")
    finished = time.time()
    conn.close()
    channel.put({"started": started, "finished": finished, "accepted": accepted, "failures": failures[:5]})


# --- CPU accounting ----------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    stat = f.read()
                kids.setdefault(int(stat[stat.rfind(")") + 2 :].split()[1]), []).append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``, with its reaped children's (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2 :].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def tree_cpu(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds of each named process tree (the root and every live descendant)."""
    kids, out = _children(), {}
    for name, root in roots.items():
        total, stack, seen = 0.0, [root], set()
        while stack:
            pid = stack.pop()
            if pid not in seen:
                seen.add(pid)
                total += cpu_seconds(pid)
                stack.extend(kids.get(pid, []))
        out[name] = total
    return out
