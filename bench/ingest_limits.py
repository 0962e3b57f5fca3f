"""Publishers and limits of the ingest benchmark (``bench/ingest.py``), measured in the same run.

Publishers are separate processes writing pre-built MQTT packets on raw sockets (QoS 1), so the publisher
is never the bottleneck; the same publisher feeds the bare paho subscriber that measures the broker's
delivery limit. The COPY limit writes the rows ingest writes, into the same table, with psycopg's own
``write_row`` (what a plain psycopg program does).
"""

from __future__ import annotations

import json
import multiprocessing
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

# --- raw MQTT 3.1.1 publishing (pre-built packets, QoS 1, PUBACKs drained by a thread) -------------


def _remaining(length: int) -> bytes:
    out = bytearray()
    while True:
        byte = length % 128
        length //= 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _connect_packet(client_id: str) -> bytes:
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return b"\x10" + _remaining(len(body)) + body


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """A QoS 1 MQTT 3.1.1 PUBLISH packet."""
    name = topic.encode()
    body = struct.pack("!H", len(name)) + name + struct.pack("!H", mid) + payload
    return b"\x32" + _remaining(len(body)) + body


class RawPublisher:
    """A QoS 1 publisher on a plain socket: sends pre-built packets, counts PUBACKs."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(_connect_packet(f"bench-pub-{uuid.uuid4().hex[:8]}"))
        assert self.sock.recv(4)[:1] == b"\x20", "broker refused the publisher"
        self.acked = 0
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            data = self.sock.recv(65536)
            if not data:
                return
            self.acked += len(data) // 4  # PUBACKs are 4 bytes each

    def send(self, packets: bytes) -> None:
        """Write pre-built packets."""
        self.sock.sendall(packets)


def _messages(
    devices: list[str], count: int, points: int, stamp: str | None = None
) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        device = devices[i % len(devices)]
        if points == 1:
            out.append((f"insa/devices/{device}/telemetry/k{i % 10}", f"{i * 0.5}".encode()))
        else:
            body = {
                "timestamp": stamp or "2026-01-01T00:00:00Z",
                "telemetry": {f"k{k}": {"value": i + k * 0.25, "unit": "C"} for k in range(points)},
                "metadata": {"quality": 100},
            }
            out.append((f"insa/devices/{device}/telemetry", json.dumps(body).encode()))
    return out


def publish_burst(host: str, port: int, devices: list[str], count: int, points: int, queue: Any) -> None:
    """Child process: pre-build ``count`` messages of ``points`` points, send them all on "go"."""
    messages = _messages(devices, count, points)
    chunks = []
    for start in range(0, count, 500):
        chunks.append(
            b"".join(
                publish_packet(topic, payload, (start + j) % 65535 + 1)
                for j, (topic, payload) in enumerate(messages[start : start + 500])
            )
        )
    publisher = RawPublisher(host, port)
    queue.put("ready")
    queue.get()  # wait for "go"
    started = time.time()
    for chunk in chunks:
        publisher.send(chunk)
    queue.put(started)
    deadline = time.time() + 120
    while publisher.acked < count and time.time() < deadline:
        time.sleep(0.01)


def publish_paced(host: str, port: int, devices: list[str], seconds: float, rate: int, queue: Any) -> None:
    """10-point messages at ``rate`` points/s, each stamped with its send time."""
    publisher = RawPublisher(host, port)
    queue.put("ready")
    queue.get()
    per_tick = max(1, rate // 10 // 100)  # messages per 10 ms tick
    started = time.time()
    tick = 0
    mid = 0
    while time.time() - started < seconds:
        stamp = datetime.now(UTC).isoformat()
        packets = []
        for message in _messages(devices, per_tick, 10, stamp):
            mid = mid % 65535 + 1
            packets.append(publish_packet(message[0], message[1], mid))
        publisher.send(b"".join(packets))
        tick += 1
        delay = started + tick * 0.01 - time.time()
        if delay > 0:
            time.sleep(delay)
    queue.put(started)


class _Channel:
    """Two queues: the parent's "go" never races with the child's answers."""

    def __init__(self, context: Any) -> None:
        self.to_child = context.Queue()
        self.to_parent = context.Queue()

    def put(self, item: Any) -> None:
        """Parent -> child."""
        self.to_child.put(item)

    def get(self, timeout: float | None = None) -> Any:
        """Child -> parent."""
        return self.to_parent.get(timeout=timeout)


class _ChildEnd:
    """The child's side of a _Channel."""

    def __init__(self, channel: _Channel) -> None:
        self.to_child = channel.to_child
        self.to_parent = channel.to_parent

    def put(self, item: Any) -> None:
        """Child -> parent."""
        self.to_parent.put(item)

    def get(self, timeout: float | None = None) -> Any:
        """Parent -> child."""
        return self.to_child.get(timeout=timeout)


def run_publisher(target: Any, *args: Any) -> tuple[Any, Any]:
    """Start a publisher process and wait until it is connected; returns (process, channel)."""
    context = multiprocessing.get_context("spawn")
    channel = _Channel(context)
    process = context.Process(target=target, args=(*args, _ChildEnd(channel)), daemon=True)
    process.start()
    assert channel.get(timeout=60) == "ready"
    return process, channel


# --- phases -------------------------------------------------------------------------------------


def copy_limit(url: str, rows: int) -> float:
    """Rows/s of binary COPY into telemetry, in transactions of 50,000 rows (the rows ingest writes)."""
    device = uuid.uuid4()
    stamp = datetime.now(UTC)
    data = [(stamp, device, f"k{i % 10}", i * 0.5, "C", 100, None, None) for i in range(rows)]
    rate = copy_rows(url, data)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM telemetry WHERE device_id = %s", (device,))
    return rate


def copy_rows(url: str, data: list[tuple[Any, ...]]) -> float:
    """Rows/s of binary COPY of ``data`` (``COPY_COLUMNS`` order) into telemetry, 50,000 a transaction."""
    from ingest.validation import COPY_COLUMNS, COPY_TYPES

    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for start in range(0, len(data), 50_000):
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy(f"COPY telemetry ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)") as copy,
            ):
                copy.set_types(COPY_TYPES)
                for row in data[start : start + 50_000]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(data) / elapsed


def broker_limit(mqtt_url: str, devices: list[str], count: int) -> tuple[float, float]:
    """Messages/s a bare paho subscriber (MQTT 5, QoS 1, automatic acks) receives from the publisher,
    and its CPU microseconds per message (this process; the publisher runs in another)."""
    import paho.mqtt.client as mqtt

    from workbench.mqtt import host_port, make_client

    host, port = host_port(mqtt_url)
    received = [0, 0.0]
    done = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        received[0] += 1
        if received[0] == count:
            received[1] = time.time()
            done.set()

    client = make_client(mqtt_url, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.connect(host, port)
    client.subscribe("insa/devices/+/telemetry/+", qos=1)
    client.loop_start()
    time.sleep(0.5)
    process, queue = run_publisher(publish_burst, host, port, devices, count, 1)
    queue.put("go")
    cpu_before = time.process_time()
    started = queue.get(timeout=60)
    done.wait(120)
    cpu = time.process_time() - cpu_before
    if not done.is_set():
        print(f"bare subscriber received {received[0]} of {count} messages", file=sys.stderr)
    client.disconnect()
    client.loop_stop()
    process.join(10)
    rate = received[0] / (received[1] - started) if received[1] else 0.0
    return rate, cpu * 1e6 / max(received[0], 1)
