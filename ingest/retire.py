"""Retiring the MQTT sessions of ingest workers that no longer run, after taking what they hold.

A worker's session is persistent and stays in the shared-subscription group while the worker is
away, so Mosquitto keeps giving it a share of the messages. That is what makes a killed worker lose
nothing, but when the worker count goes down for good (3 -> 2) the retired worker's share waits,
unacknowledged, until the session expires and is then lost. At start, ingest resumes each session it
does not use any more (``clean_start`` false: CONNACK's session-present flag says whether one
exists), unsubscribes it, passes what it holds through the normal pipeline (committed, then
acknowledged), and ends it with session expiry 0. A probe that finds no session also ends with expiry
0; it never subscribed, so nothing was routed to it meanwhile. On an MQTT 3.1.1 broker ingest runs one
process with one session, so the service skips retirement (``IngestService.start``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from ingest.mqtt_ingest import TOPICS, MqttIngest, subscriptions
from ingest.pipeline import Pipeline
from workbench.settings import Settings

log = logging.getLogger(__name__)

# Worker indexes probed beyond the ones running: more than anyone runs on one machine.
PROBE_EXTRA = 16
# Group of `--workers` when WORKBENCH_INGEST_SHARED_GROUP is unset.
DEFAULT_GROUP = "workbench-ingest"
# Silence after the last message and ack before the session counts as empty (the broker sends the
# next queued messages as soon as our PUBACKs free the receive window).
QUIET_S = 2.0
# No progress for this long (PostgreSQL down, connection lost): keep the session for the next start.
STALL_S = 60.0


def worker_group(settings: Settings) -> str:
    """The shared-subscription group of ``--workers`` processes."""
    return settings.ingest_shared_group or DEFAULT_GROUP


def retired_client_ids(client_id: str, workers: int) -> list[str]:
    """Client ids this run does not use: worker indexes >= ``workers``, and the other mode's ids.

    With ``--workers N`` the single-process id is retired; a single process retires ``-0``, ``-1``...
    """
    if workers > 1:
        return [f"{client_id}-{index}" for index in range(workers, workers + PROBE_EXTRA)] + [client_id]
    return [f"{client_id}-{index}" for index in range(PROBE_EXTRA)]


@dataclass
class Retired:
    """A session found and retired (``ended`` False: it was left for the next start)."""

    client_id: str
    recovered: int
    ended: bool


class SessionRetirer:
    """Runs in the background of a started ingest service: probes, drains and ends retired sessions."""

    def __init__(self, settings: Settings, pipeline: Pipeline, client_ids: list[str]) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.client_ids = client_ids
        self.retired: list[Retired] = []
        self.done = threading.Event()
        self._cancel = threading.Event()
        self._current: MqttIngest | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SessionRetirer:
        """Start probing in a thread (the service's own session is already up)."""
        self._thread = threading.Thread(target=self.run, name="ingest-retire", daemon=True)
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop handing messages to the pipeline (before the pipeline commits and acks what it has)."""
        self._cancel.set()
        current = self._current
        if current is not None:
            current.pause()

    def stop(self) -> None:
        """Disconnect a session being drained, keeping it (and its unacked messages) for the next start."""
        self.pause()
        if self._thread is not None:
            self._thread.join(10)
        current = self._current
        if current is not None:
            current.stop()
            self._current = None

    def run(self) -> None:
        """Probe each client id in turn; a failure is logged and leaves that session as it was."""
        try:
            for client_id in self.client_ids:
                if self._cancel.is_set():
                    return
                try:
                    retired = self._retire(client_id)
                except ConnectionError as error:
                    log.warning("MQTT session %s not probed: %s", client_id, error)
                    continue
                if retired is not None:
                    self.retired.append(retired)
        finally:
            self.done.set()

    def _retire(self, client_id: str) -> Retired | None:
        assert self.settings.mqtt_url
        session = MqttIngest(
            self.settings.mqtt_url,
            self.pipeline,
            client_id,
            inflight=self.settings.ingest_inflight,
            subscribe=False,
            fallback=False,  # sessions to retire exist at MQTT 5 only (shared subscriptions, expiry)
        )
        self._current = session
        try:
            session.start()  # clean_start false with the usual expiry: a crash mid-drain keeps the session
        except ConnectionError:
            session.stop()
            self._current = None
            raise
        if not session.session_present:
            session.end_session()  # the probe made an empty session (no subscriptions): end it now
            self._current = None
            return None
        # The topic filters it may hold: a worker's shared ones, or a single process's plain ones.
        filters = sorted({*TOPICS, *subscriptions(worker_group(self.settings))})
        session.client.unsubscribe(filters)  # queued messages still come; new ones go to the others
        ended = self._drain(session)
        if not ended and self._cancel.is_set():
            return None  # the service is stopping: ``stop`` disconnects once the pipeline has acked
        if ended:
            session.end_session()
            log.info("retired MQTT session %s: %d messages recovered", client_id, session.received)
        else:
            session.stop()
            log.warning(
                "MQTT session %s kept for the next start: drain stopped (%d messages taken, %d acked)",
                client_id,
                session.taken,
                session.acked,
            )
        self._current = None
        return Retired(client_id, session.received, ended)

    def _drain(self, session: MqttIngest) -> bool:
        """Wait until the session is empty and all it gave is committed and acked; False if that stalls."""
        state = (session.arrived, session.acked)
        changed = time.monotonic()
        while not self._cancel.is_set():
            # A lost connection (or a live owner taking its id back) leaves acks undeliverable.
            if not session.connected:
                return False
            now = time.monotonic()
            current = (session.arrived, session.acked)
            if current != state:
                state, changed = current, now
            elif session.settled and now - changed >= QUIET_S:
                return True
            elif now - changed >= STALL_S:
                return False
            time.sleep(0.05)
        return False
