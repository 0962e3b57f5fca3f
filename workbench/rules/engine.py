"""The rule engine: evaluates committed telemetry batches off the ingest thread, raises and resolves alerts,
queues actions, and runs the schedule.

``RuleEngine(platform).start()`` subscribes to ``telemetry.batch`` on the bus. The bus handler only enqueues
the batch (ingest never waits for rules); one evaluation thread drains the queue, merges what has piled up
into one frame and evaluates every enabled streaming rule on it, vectorised per rule (the frame is split
by key once; each rule takes its key's rows and its target's devices with one mask). Alert rows are
committed in one transaction per frame, the actions queued on the action worker threads, then the rule
state saved. Reading history (statistical windows) runs on a loader thread, never on the evaluation thread:
a rule holds back only the points of the devices whose window is loading, so no alert waits behind a slow
history query. Every frame's stage marks are kept in ``timings`` (``workbench.rules.timing``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from workbench.db.tables import latest_values
from workbench.live.bus import ALERT_UPDATE, RULES_CHANGED, TELEMETRY_BATCH
from workbench.live.events import TelemetryBatch
from workbench.metrics import RULE_EVALUATIONS, queue_probe
from workbench.platform import Platform
from workbench.rules import alerts as alert_rows
from workbench.rules.actions.base import ActionContext
from workbench.rules.actions.worker import ActionWorker
from workbench.rules.codes import DeviceCodes
from workbench.rules.frames import Columns, columns_of
from workbench.rules.history import HistoryLoader
from workbench.rules.lifecycle import AlertBook, Decision, decide
from workbench.rules.scheduler import Scheduler
from workbench.rules.store import (
    DeviceDirectory,
    load_rules,
    load_states,
    save_states,
    window_aggregates,
)
from workbench.rules.timing import FrameTiming, StageLog
from workbench.rules.types import EvalContext, Points, Rule, RuleState, RuleType, rule_type, rule_types
from workbench.rules.windows import WindowBook

log = logging.getLogger(__name__)

AUTO_RESOLVE_COMMENT = "auto-resolved: condition cleared"
SERVICE = "rules"


class RuleEngine:
    """Streaming evaluation, alert lifecycle, action worker and scheduler of one process."""

    def __init__(
        self,
        platform: Platform,
        reload_seconds: float = 5.0,
        tick_seconds: float = 1.0,
        min_interval: float = 0.25,
    ) -> None:
        self.platform = platform
        # Batches arriving within min_interval of the last evaluation are merged into the next one: the
        # per-rule cost is paid a few times per second whatever the batch rate. 0.25 s: bench/rules.py
        # measured commit -> alert p99 ~0.45 s at load 6 (0.4 s: ~0.75 s), for ~20% more engine CPU.
        self.min_interval = min_interval
        self._last_start = 0.0
        self.engine = platform.engine
        self.directory = DeviceDirectory(platform.engine)
        self.book = AlertBook()
        self.worker = ActionWorker(platform, platform.settings.rules_action_threads)
        self.scheduler = Scheduler(platform.engine, self.rules, self.fire_schedule, tick_seconds)
        self.reload_seconds = reload_seconds
        self._rules: list[Rule] = []
        self._states: dict[str, RuleState] = {}
        self._targets: dict[str, Selection] = {}
        self._streaming: tuple[list[Rule], int, list[tuple[Rule, RuleType]]] = ([], 0, [])
        self.codes = DeviceCodes()
        self.windows = WindowBook()  # statistical windows, shared by the rules over the same key and window
        # (time the bus handed it over, batch); None as batch: a history load finished, evaluate anyway.
        self._queue: queue.Queue[tuple[float, TelemetryBatch | None]] = queue.Queue(maxsize=100_000)
        queue_probe("rule_batches", self._queue.qsize)
        queue_probe("rule_actions", lambda: self.worker.pending)
        self._loader: HistoryLoader | None = None
        self._evaluating = threading.Lock()  # the loop and direct callers (tests, tools) take turns
        self._references: dict[str, float] = {}
        self._own_resolves: set[str] = set()  # alert ids being announced as auto-resolved by this engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: list[Any] = []
        self._reload_due = 0.0
        self.dropped = 0
        self.last_error: str | None = None
        self.evaluated_batches = 0
        self.eval_seconds: list[float] = []  # durations of the latest evaluations (health, benchmarks)
        self.timings = StageLog()

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> RuleEngine:
        """Subscribe to the bus, load rules, state, open alerts and devices; start the threads.

        The bus subscription comes first, so no batch committed while the engine starts is missed (its
        points may also be in a statistical window loaded at start: counted twice, never lost). Statistical
        windows load in the background; start() does a handful of queries, whatever the number of rules.
        """
        bus = self.platform.bus
        self._unsubscribe = [
            bus.subscribe(TELEMETRY_BATCH, self._on_batch),
            bus.subscribe(ALERT_UPDATE, self._on_alert_update),
            bus.subscribe(RULES_CHANGED, lambda topic, payload: self._request_reload()),
        ]
        self._loader = HistoryLoader(self._wake)
        self.reload()
        self.directory.refresh()
        self.book.open, self.book.last = alert_rows.open_pairs(self.engine)
        saved = load_states(self.engine, [r.id for r in self._rules])
        now = time.time_ns()
        for rule in self._rules:  # windows ending now load in the background, not on the first live batches
            kind = rule_type(rule.type) if rule_type_or_none(rule.type) else None
            if kind is None:
                continue
            state = self.state(rule, saved.get(rule.id, RuleState()))
            devices = kind.devices(rule) or self.directory.matching(rule.target, rule.device_id)
            ids = sorted(devices) if devices is not None else list(self.directory.ids())
            self._safely(lambda k=kind, r=rule, s=state, i=ids: k.warm(r, s, i, now))
        for rule, kind in self.streaming():  # the rules' device masks, before the first frame needs them
            self._safely(lambda r=rule, k=kind: self._selection(r, k))
        self.worker.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rule-engine", daemon=True)
        self._thread.start()
        self.scheduler.start()
        self.platform.services.rules = self
        self.platform.health.register(SERVICE, self.health)
        return self

    def stop(self) -> None:
        """Stop consuming, finish the frame in hand and queued actions, stop the threads."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        self.scheduler.stop()
        self.worker.stop()
        if self._loader is not None:
            self._loader.stop()

    def health(self) -> dict[str, Any]:
        """Health details; raises when the evaluation thread died."""
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            raise RuntimeError("rule evaluation thread stopped")
        return {
            "rules": len(self._rules),
            "queued_batches": self._queue.qsize(),
            "pending_actions": self.worker.pending,
            "dropped_batches": self.dropped,
            "last_error": self.last_error,
            "last_evaluation_ms": round(self.eval_seconds[-1] * 1000, 1) if self.eval_seconds else None,
            "history_loads": self._loader.in_flight() if self._loader is not None else 0,
            "history_reads": self._loader.reads if self._loader is not None else 0,
            "stages_ms": self.timings.summary(),  # commit -> alert, by stage (workbench.rules.timing)
        }

    def rules(self) -> list[Rule]:
        """The enabled rules in use."""
        return list(self._rules)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait until queued batches and history loads are evaluated and their actions ran (tests, bench)."""
        deadline = time.monotonic() + timeout
        loading = self._loader.in_flight if self._loader is not None else lambda: 0
        # unfinished_tasks counts batches from put() until evaluated (task_done): no gap between the two.
        while (self._queue.unfinished_tasks or loading()) and time.monotonic() < deadline:
            time.sleep(0.005)
        drained = self.worker.drain(max(0.0, deadline - time.monotonic()))
        return drained and not self._queue.unfinished_tasks

    # -- bus handlers (publisher's thread: only enqueue) ------------------------------------------------
    def _on_batch(self, topic: str, batch: TelemetryBatch) -> None:
        try:
            self._queue.put_nowait((time.time(), batch))
        except queue.Full:
            self.dropped += 1
            log.error("rule engine queue full: a batch of %d points was not evaluated", len(batch.frame))

    def _on_alert_update(self, topic: str, payload: dict[str, Any]) -> None:
        if payload.get("id") in self._own_resolves:
            # Our own auto-resolve, already in the book: the pair may hold a newer open alert by now.
            self._own_resolves.discard(payload["id"])
            return
        if payload.get("status") == "resolved" and payload.get("rule_id") and payload.get("device_id"):
            self.book.forget(str(payload["rule_id"]), str(payload["device_id"]))

    def _request_reload(self) -> None:
        self._reload_due = 0.0

    def _wake(self) -> None:
        """A history load finished (loader thread): evaluate again even if no batch arrives."""
        with contextlib.suppress(queue.Full):  # batches are queued: the next frame evaluates the rule
            self._queue.put_nowait((time.time(), None))

    # -- evaluation thread ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() >= self._reload_due:
                self._safely(self.reload)
            try:
                received, first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batches: list[TelemetryBatch | None] = [first]
            try:
                taken = time.time()
                self._stop.wait(max(0.0, self._last_start + self.min_interval - time.monotonic()))
                self._last_start = time.monotonic()
                while len(batches) < 200:
                    try:
                        batches.append(self._queue.get_nowait()[1])
                    except queue.Empty:
                        break
                frames = [b.frame for b in batches if b is not None]
                commits = [b.committed_at.timestamp() for b in batches if b is not None]
                committed = min(commits, default=received)
                timing = FrameTiming(committed, received, taken, batches=len(frames))
                frame = columns_of(frames)
                timing.points = len(frame)
                began, cpu = time.perf_counter(), time.thread_time()
                timing.started = time.time()
                self._safely(lambda batch=frame, t=timing: self.evaluate(batch, t))
                timing.cpu = time.thread_time() - cpu
                self.eval_seconds.append(time.perf_counter() - began)
                del self.eval_seconds[:-1000]
                self.timings.add(timing)
            finally:
                for _ in batches:
                    self._queue.task_done()

    def _safely(self, work: Any) -> None:
        try:
            work()
        except Exception as error:
            self.last_error = f"{type(error).__name__}: {error}"
            log.exception("rule engine step failed")

    def reload(self) -> None:
        """Re-read enabled rules; a changed rule starts from its persisted state again."""
        fresh = load_rules(self.engine)
        now = {r.id: r.updated_at for r in fresh}
        for rule in self._rules:
            if rule.id in now and now[rule.id] == rule.updated_at:
                continue
            # Changed or gone: state shared with other rules (statistical windows) it fed is let go too.
            state = self._states.pop(rule.id, None)
            self._targets.pop(rule.id, None)
            if state is not None and rule_type_or_none(rule.type):
                self._safely(lambda r=rule, s=state: rule_type(r.type).retire(r, s))
        self._rules = fresh
        self._reload_due = time.monotonic() + self.reload_seconds

    def state(self, rule: Rule, saved: RuleState | None = None) -> RuleState:
        """The rule's state: ``saved`` (read at start) or loaded from rule_state the first time."""
        state = self._states.get(rule.id)
        if state is None:
            state = saved if saved is not None else load_states(self.engine, [rule.id]).get(rule.id)
            state = state or RuleState()
            state.context = EvalContext(
                codes=self.codes,
                windows=self.windows,
                window_loader=self._window,
                reference=self._reference,
                background=self._loader,
                platform=self.platform,
            )
            self._states[rule.id] = state
        return state

    def _reference(self, key: str) -> float:
        """A typical value of a key (any latest value), to keep windowed sums numerically tame."""
        if key not in self._references:
            with self.engine.connect() as conn:
                found = conn.execute(
                    select(latest_values.c.value)
                    .where(latest_values.c.key == key, latest_values.c.value.is_not(None))
                    .limit(1)
                ).scalar()
            self._references[key] = float(found or 0.0)
        return self._references[key]

    def _window(
        self, ids: list[str], firsts: list[int], key: str, window: int, width: int, ref: float
    ) -> dict[str, np.ndarray]:
        return window_aggregates(self.engine, ids, firsts, key, window, width, ref)

    def evaluate(self, frame: pd.DataFrame | Columns, timing: FrameTiming | None = None) -> list[Decision]:
        """Evaluate every streaming rule on a frame of committed points; apply and return the decisions."""
        columns = frame if isinstance(frame, Columns) else columns_of([frame])
        with self._evaluating:
            return self._evaluate(columns, timing)

    def streaming(self) -> list[tuple[Rule, RuleType]]:
        """The enabled rules evaluated on batches, with their types (cached until rules or types change)."""
        types = rule_types()
        if self._streaming[0] is not self._rules or self._streaming[1] != len(types):
            found = [(r, types[r.type]) for r in self._rules if r.type in types and types[r.type].streaming]
            self._streaming = (self._rules, len(types), found)
        return self._streaming[2]

    def _evaluate(self, frame: Columns, timing: FrameTiming | None) -> list[Decision]:
        streaming = self.streaming()
        self.evaluated_batches += 1
        self.windows.frame += 1
        if not streaming:
            return []
        frame = frame.numeric()
        known = len(self.codes)
        dev = self.codes.encode(frame.ids)
        if len(self.codes) > known:
            self.directory.ensure(self.codes.ids[known:])
        # Sorted once by (device, time): every rule's rows keep that order, so evaluators skip sorting.
        first = np.lexsort((frame.ts, dev))
        ids, dev, ts = frame.ids[first], dev[first], frame.ts[first]
        keys, values = frame.keys[first], frame.values[first]
        labels, uniques = pd.factorize(keys)
        order = np.argsort(labels, kind="stable")
        cuts = np.searchsorted(labels[order], np.arange(len(uniques) + 1))
        by_key = {str(k): order[cuts[i] : cuts[i + 1]] for i, k in enumerate(uniques)}
        nothing = np.zeros(0, dtype=np.int64)
        decisions: list[Decision] = []
        changed: list[tuple[str, str, dict[str, Any]]] = []
        # Rules reading the same keys of the same devices (often: one key, one device type) get the same
        # points: selected once per frame. Rule types only read the Points they are given.
        selected: dict[tuple[Any, Any], Points] = {}
        counts: dict[str, int] = {}
        for rule, kind in streaming:
            selection = self._selection(rule, kind)
            points = selected.get(selection.share)
            if points is None:
                parts = [by_key[k] for k in selection.keys if k in by_key]
                rows = nothing if not parts else parts[0] if len(parts) == 1 else np.concatenate(parts)
                if len(parts) > 1:
                    rows = np.sort(rows)
                if selection.mask is not None and len(rows):
                    rows = rows[selection.mask[dev[rows]]]
                points = Points(dev[rows], ids[rows], keys[rows], ts[rows], values[rows], ordered=True)
                selected[selection.share] = points
            if not len(points) and not (rule.id in self._states and kind.pending(self._states[rule.id])):
                continue
            state = self.state(rule)
            try:
                events = kind.evaluate(rule, points, state)
            except Exception as error:
                self.last_error = f"rule {rule.name}: {type(error).__name__}: {error}"
                log.exception("rule %s failed", rule.id)
                continue
            counts[rule.type] = counts.get(rule.type, 0) + 1
            if len(events):
                decisions.extend(decide(rule, events, self.book))
            if state.dirty:
                changed.extend((rule.id, d, state.devices[d]) for d in state.dirty)
                state.dirty.clear()
        for name, count in counts.items():
            RULE_EVALUATIONS.labels(name).inc(count)
        if timing is not None:
            timing.evaluated = time.time()
        self._apply(decisions, changed, timing)
        return decisions

    def _selection(self, rule: Rule, kind: Any) -> Selection:
        """The rule's keys and devices (a boolean array over device codes), cached per directory version."""
        cached = self._targets.get(rule.id)
        version = (self.directory.version, len(self.codes))
        if cached is not None and cached.version == version:
            return cached
        if cached is not None and cached.version[0] == version[0]:
            # Same directory, new device codes only: the mask grows by the new codes' membership.
            mask, devices = cached.mask, cached.share[1]
            if mask is not None and devices is not None:
                fresh = self.codes.ids[len(mask) : version[1]]
                member = np.fromiter((i in devices for i in fresh), dtype=bool, count=len(fresh))
                mask = np.concatenate([mask, member])
            cached = Selection(version, cached.keys, mask, cached.share)
        else:
            devices = kind.devices(rule) or self.directory.matching(rule.target, rule.device_id)
            mask = self.codes.mask(devices)  # may assign codes: take the version after
            keys = tuple(sorted(kind.keys(rule.condition)))
            share = (keys, None if devices is None else frozenset(devices))
            cached = Selection((self.directory.version, len(self.codes)), keys, mask, share)
        self._targets[rule.id] = cached
        return cached

    def _apply(
        self,
        decisions: list[Decision],
        changed: list[tuple[str, str, dict[str, Any]]],
        timing: FrameTiming | None = None,
    ) -> None:
        if decisions:
            created: list[dict[str, Any]] = []
            resolved: list[dict[str, Any]] = []
            with self.engine.begin() as conn:
                for step in _steps(decisions):
                    raises = [alert_rows.alert_values(d, self.directory) for d in step if d.kind == "raise"]
                    resolves = [(d.rule.id, d.device_id) for d in step if d.kind == "resolve"]
                    created += alert_rows.insert_alerts(conn, raises)
                    resolved += alert_rows.auto_resolve(conn, resolves, AUTO_RESOLVE_COMMENT)
            if timing is not None:
                timing.written = time.time()
                timing.alerts = [str(row["id"]) for row in created]
            by_id = {r.id: r for r in self._rules}
            for row in created:
                rule = by_id.get(str(row["rule_id"]))
                if rule is not None:
                    self.run_actions(rule, row)
            for row in resolved:
                self._own_resolves.add(str(row["id"]))
                alert_rows.publish_update(self.platform, row)
                self._own_resolves.discard(str(row["id"]))
            if timing is not None:
                timing.dispatched = time.time()
        # Rule state after the alerts' actions are on their way: a restart re-derives the little it loses.
        if changed:
            save_states(self.engine, changed)

    def run_actions(self, rule: Rule, row: dict[str, Any]) -> None:
        """Queue the rule's actions for a new alert row."""
        body = alert_rows.as_json(row)
        info = self.directory.get(body["device_id"]) if body.get("device_id") else None
        body["device_name"] = info.name if info else None
        for config in rule.actions:
            self.worker.submit(config, ActionContext(self.platform, rule, alert=body))

    def fire_schedule(self, rule: Rule, due: datetime) -> None:
        """Queue a schedule rule's actions for one due time."""
        for config in rule.actions:
            self.worker.submit(config, ActionContext(self.platform, rule, due_at=due))


@dataclass(frozen=True)
class Selection:
    """Which rows of a frame a rule reads: its keys and devices (``share``: equal for equal selections)."""

    version: tuple[int, int]
    keys: tuple[str, ...]
    mask: np.ndarray | None
    share: tuple[Any, Any]


def _steps(decisions: list[Decision]) -> list[list[Decision]]:
    """Decisions in steps that hold at most one per (rule, device), in their order.

    A pair can clear and fire again in one frame: its resolve must reach the database before the new
    alert's insert (which the open alert would otherwise absorb). Usually there is one step.
    """
    steps: list[list[Decision]] = []
    seen: dict[tuple[str, str], int] = {}
    for decision in decisions:
        pair = (decision.rule.id, decision.device_id)
        n = seen[pair] = seen.get(pair, -1) + 1
        if n == len(steps):
            steps.append([])
        steps[n].append(decision)
    return steps


def rule_type_or_none(name: str) -> bool:
    """Whether a rule type of this name is registered (a rule of an unloaded plugin type is skipped)."""
    try:
        rule_type(name)
    except KeyError:
        return False
    return True


def engine_of(platform: Platform) -> RuleEngine | None:
    """The running engine of a platform, if any."""
    return platform.services.rules
