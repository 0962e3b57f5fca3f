"""A gunicorn threaded worker that reads request headers in its event loop, never in a pool thread.

gunicorn's ``gthread`` worker hands a connection to a pool thread once its first byte arrives; the
thread then blocks until the headers are complete. Thousands of clients trickling headers (slowloris)
would hold every thread, and ``/healthz`` and HTTP ingest would queue behind them. Here the event loop
collects the head without blocking and gives the connection to a thread only once the head is complete;
a client that has not sent its whole head within the header timeout is closed.
"""

from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import threading
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker

HEAD_END = b"\r\n\r\n"
# A head larger than this goes to the parser, which answers 431/400 by its own limits.
HEAD_LIMIT = 64 * 1024


class GuardedThreadWorker(ThreadWorker):
    """gthread with header and idle timeouts enforced without spending threads on slow clients."""

    # Set by workbench.web.server before the worker starts (the worker is built by gunicorn's arbiter).
    header_timeout = 10.0
    idle_timeout = 60.0
    on_stop: list[Any] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heading: deque[TConn] = deque()

    def accept(self, listener: socket.socket) -> None:
        """Accept a connection and wait for its head in the event loop."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as error:
            if error.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                return
            raise
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        self._await_head(conn)

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection speaks again: collect its next head in the event loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._await_head(conn)

    def _await_head(self, conn: TConn) -> None:
        conn.sock.setblocking(False)
        conn.head = bytearray()
        conn.head_deadline = time.monotonic() + self.header_timeout
        self.heading.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))

    def _on_head_readable(self, conn: TConn, client: Any) -> None:
        try:
            data = conn.sock.recv(HEAD_LIMIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        head: bytearray = conn.head
        head += data
        if HEAD_END in head or len(head) >= HEAD_LIMIT:
            self.poller.unregister(conn.sock)
            self.heading.remove(conn)
            conn.data_ready = True
            self.enqueue_req(conn)

    def _drop(self, conn: TConn) -> None:
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        with contextlib.suppress(ValueError):
            self.heading.remove(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Close connections whose head did not arrive in time (and gunicorn's own pending ones)."""
        super().murder_pending()
        now = time.monotonic()
        while self.heading and self.heading[0].head_deadline <= now:
            self._drop(self.heading[0])

    def handle(self, conn: TConn) -> Any:
        """Serve one request whose head the event loop has read (runs in a pool thread)."""
        head = getattr(conn, "head", None)
        if head:
            conn.head = None
            conn.sock.setblocking(True)
            try:
                conn.init()
            except OSError:
                return False
            conn.parser.unreader.unread(bytes(head))
        # A stalled body (or a dead peer) frees its thread after the idle timeout.
        conn.sock.settimeout(self.idle_timeout)
        return super().handle(conn)

    def finish_request(self, conn: TConn, fs: Any) -> None:
        """As gthread's, but a connection whose socket is already closed is counted off once."""
        # gthread decrements the count, then closes gracefully; a WebSocket's socket (closed by
        # simple-websocket) raises there and the count is decremented again: the stopping worker
        # would then think it idle and quit under requests still in flight.
        if not fs.cancelled() and fs.exception() is None and fs.result() is False:
            self.nr_conns -= 1
            with contextlib.suppress(OSError):
                conn.close(graceful=True)
            return
        super().finish_request(conn, fs)

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop accepting, let requests finish, and tell live clients to reconnect elsewhere."""
        first = self.alive
        super().handle_exit(sig, frame)
        if first:
            for hook in self.on_stop:
                threading.Thread(target=hook, name="web-stop", daemon=True).start()


def configure(header_timeout: float, idle_timeout: float) -> None:
    """Set the worker's timeouts (called in the arbiter before it forks the worker)."""
    GuardedThreadWorker.header_timeout = header_timeout
    GuardedThreadWorker.idle_timeout = idle_timeout
