"""Peers from other implementations, run with Node.js: Tahu's sparkplug-client, modbus-serial, node-opcua,
socket.io-client (``tests/peers/``; ``npm ci --prefix tests/peers`` installs them, the fixture does it once).

Tests using them carry ``@pytest.mark.node`` (skipped without node/npm, except under CI).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PEERS = Path(__file__).parent / "peers"


@pytest.fixture(scope="session")
def node_peers() -> Path:
    """``tests/peers`` with its npm packages installed (``npm ci`` from the committed lock file)."""
    modules = PEERS / "node_modules"
    stamp = modules / ".package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < (PEERS / "package-lock.json").stat().st_mtime:
        npm = shutil.which("npm")
        assert npm is not None, "npm is needed for the peers in tests/peers"
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefix", str(PEERS)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"npm ci in tests/peers failed:\n{done.stdout}\n{done.stderr}"
    return PEERS


class NodePeer:
    """One peer process: its stdout lines (JSON when they parse) in a queue; stdin to drive it."""

    def __init__(self, script: str, *args: str) -> None:
        node = shutil.which("node")
        assert node is not None, "node is needed for the peers in tests/peers"
        self.lines: queue.Queue[Any] = queue.Queue()
        self.seen: list[Any] = []
        self.process = subprocess.Popen(
            [node, str(PEERS / script), *args],
            cwd=PEERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DEBUG": ""},
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put(line)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def expect(self, match: Callable[[Any], bool], timeout: float = 20.0) -> Any:
        """The first line (seen before or arriving within ``timeout``) that ``match`` accepts."""
        for line in self.seen:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, min(0.2, deadline - time.monotonic())))
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.seen.append(line)
            if match(line):
                return line
        raise AssertionError(
            f"peer never said it; saw {self.seen[-20:]}; stderr {''.join(self.stderr)[-2000:]}"
        )

    def send(self, line: str) -> None:
        """One line to the peer's stdin."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self) -> None:
        """Close stdin (the peers exit on it); kill after 5 s."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(5)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            self.process.kill()
            self.process.wait(5)


@pytest.fixture
def peer(node_peers: Path) -> Iterator[Callable[..., NodePeer]]:
    """``peer(script, *args)`` starts a Node peer, stopped at teardown."""
    started: list[NodePeer] = []

    def start(script: str, *args: str) -> NodePeer:
        started.append(NodePeer(script, *args))
        return started[-1]

    yield start
    for one in started:
        one.stop()
