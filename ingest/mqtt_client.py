"""A paho 2 client tuned for ingest: buffered socket reads, raw PUBLISH hand-over, acks sent in bulk.

paho reads every packet with several ``recv()`` calls (one byte of command, the length byte by byte,
then the body) and builds an ``MQTTMessage`` with its ``Properties`` for each one; it sends every
PUBACK with a wake-up write and a ``send()`` of its own. At tens of thousands of messages per second
those per-message costs are most of ingest's CPU. This subclass keeps paho's connection, session and
keep-alive logic and changes three private seams (paho 2.1-2.x):

- the socket is read through a 64 KiB buffer (``_BufferedSocket``); it reports the buffered bytes as
  ``pending()``, which paho's loop already honours for TLS sockets, so nothing waits in ``select()``
  while packets sit in the buffer;
- QoS 0/1 PUBLISH packets go to ``on_publish_raw(command, body)`` untouched (the decoder thread parses
  them in bulk); QoS 2 and everything else take paho's normal path;
- ``ack_many`` queues the PUBACKs of a whole committed batch as one write.

None of this depends on the protocol level: PUBLISH and PUBACK framing and the packet id's place are the
same in MQTT 5 and 3.1.1 (only ``parse_publish`` must know whether a properties field follows).
"""

from __future__ import annotations

import struct
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from workbench.mqtt import host_port, make_client

READ_SIZE = 65536
# CONNACK reason of a broker that does not speak the requested protocol level (MQTT 3.1.1 return code 1).
UNSUPPORTED_PROTOCOL = 132
UNAUTHORIZED = (134, 135)  # MQTT 5 CONNACK: bad user name or password, not authorized
PUBACK = 0x40
_PUBACK = struct.Struct("!BBH")

RawHandler = Callable[[int, bytes | bytearray], None]


class _BufferedSocket:
    """The client socket, read through a buffer: one ``recv()`` serves many of paho's small reads."""

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes, from the buffer while it holds any (paho handles short reads)."""
        buf, pos = self._buf, self._pos
        if pos < len(buf):
            end = pos + size
            self._pos = end
            return buf[pos:end]
        data = self._sock.recv(max(size, READ_SIZE))
        if len(data) <= size:
            return data
        self._buf, self._pos = data, size
        return data[:size]

    def drain_publishes(self, handler: RawHandler) -> int:
        """Hand every complete QoS 0/1 PUBLISH at the head of the buffer to ``handler``; how many.

        Stops at anything else (paho reads it) and at an incomplete packet (the next recv completes it).
        """
        buf, pos, end = self._buf, self._pos, len(self._buf)
        count = 0
        while pos < end:
            command = buf[pos]
            if command & 0xF0 != 0x30 or command & 0x06 == 0x06 or command & 0x06 == 0x04:
                break
            length = shift = 0
            at = pos + 1
            while at < end and shift < 28:
                byte = buf[at]
                at += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            else:
                break  # the length itself is incomplete (or malformed: paho reports it)
            if at + length > end:
                break
            pos = at + length
            handler(command, buf[at:pos])
            count += 1
        self._pos = pos
        return count

    def buffered(self) -> int:
        """Bytes received from the kernel but not handed to paho yet."""
        return max(0, len(self._buf) - self._pos)

    def pending(self) -> int:
        """Bytes readable without waiting (buffered here, or inside a TLS socket)."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered() + (inner() if inner is not None else 0)

    def fileno(self) -> int:
        """The socket's descriptor, for ``select()``."""
        return self._sock.fileno()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class IngestClient(mqtt.Client):
    """paho's client with the ingest fast paths described in the module docstring."""

    on_publish_raw: RawHandler | None = None

    def _create_socket(self) -> Any:
        return _BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        """Read packets until the buffer is empty (paho alone reads one per ``select()``).

        Complete PUBLISH packets in the buffer go straight to ``on_publish_raw`` in one tight loop;
        paho's own reader takes everything else (CONNACK, SUBACK, PINGRESP, split packets).
        """
        rc = super().loop_read(max_packets)
        handler = self.on_publish_raw
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if not isinstance(sock, _BufferedSocket) or not sock.buffered():
                break
            # Only in manual-ack mode: drained QoS 1 messages are acked by the application, never here.
            drain = self._manual_ack and self._in_packet["command"] == 0
            if handler is not None and drain and sock.drain_publishes(handler):
                with self._msgtime_mutex:
                    self._last_bytes_received = mqtt.time_func()  # paho's keep-alive clock
                if not sock.buffered():
                    break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        handler = self.on_publish_raw
        command = self._in_packet["command"]
        if handler is None or command & 0x06 == 0x04:  # QoS 2 keeps paho's PUBREC/PUBREL handshake
            return super()._handle_publish()
        handler(command, self._in_packet["packet"])
        if command & 0x06 and not self._manual_ack:
            return self._send_puback(_publish_mid(self._in_packet["packet"]))
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> None:
        """Queue the PUBACKs of QoS 1 messages as one write (manual-ack mode)."""
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        if packet:
            self._packet_queue(PUBACK, packet, 0, 0)


def make_ingest_client(
    url: str, client_id: str, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5
) -> IngestClient:
    """An IngestClient configured from ``url`` like ``workbench.mqtt.make_client`` (MQTT 5 by default).

    At MQTT 3.1.1 the session is persistent (clean session false): the broker keeps the subscriptions and
    the unacknowledged messages while ingest is away, as session expiry does at MQTT 5.
    """
    client = make_client(url, client_id, protocol=protocol)
    client.__class__ = IngestClient  # same state, our methods: make_client stays the one configuration door
    assert isinstance(client, IngestClient)
    if protocol != mqtt.MQTTv5:
        client._clean_session = False  # what paho's constructor sets from clean_session=False
    return client


def speaks_mqtt5(url: str, timeout: float = 5.0) -> bool | None:
    """Whether the broker at ``url`` accepts an MQTT 5 connection; None when it does not answer.

    A throwaway client id with a clean start and no session expiry: the probe leaves nothing behind. The
    probe carries no login (amqtt never answers an MQTT 5 CONNECT with one); a broker that refuses it
    as unauthorized answered in MQTT 5, so it speaks it.
    """
    answer: list[bool] = []
    answered = threading.Event()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure or reason.value in (UNSUPPORTED_PROTOCOL, *UNAUTHORIZED):
            answer.append(reason.value != UNSUPPORTED_PROTOCOL)
        answered.set()

    bare = urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2]).geturl()
    client = make_client(bare, f"workbench-probe-{uuid.uuid4().hex[:10]}", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    host, port = host_port(url)
    try:
        client.connect(host, port, keepalive=10, clean_start=True)
    except OSError:
        return None
    client.loop_start()
    try:
        answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return answer[0] if answer else None


def _publish_mid(body: bytearray) -> int:
    length = (body[0] << 8) | body[1]
    return (body[2 + length] << 8) | body[3 + length]


def parse_publish(command: int, body: bytes | bytearray, v5: bool = True) -> tuple[bytes, int, bytes]:
    """(topic, packet id or 0, payload) of a PUBLISH body (everything after the fixed header)."""
    length = (body[0] << 8) | body[1]
    pos = 2 + length
    topic = bytes(body[2:pos])
    mid = 0
    if command & 0x06:
        mid = (body[pos] << 8) | body[pos + 1]
        pos += 2
    if v5:  # skip the properties: their length is a variable byte integer
        size = shift = 0
        while True:
            byte = body[pos]
            pos += 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        pos += size
    return topic, mid, bytes(body[pos:])
