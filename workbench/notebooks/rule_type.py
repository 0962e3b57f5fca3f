"""The ``notebook`` rule type: a notebook of ``rules/`` as a rule condition, run on new data or on a cron.

Condition::

    {"notebook": "rules/ewma.ipynb", "parameters": {"keys": ["flow"], "lam": 0.1},
     "window": "1h", "every": "1m", "keys": ["flow"],
     "schedule": "*/5 * * * *", "timezone": "UTC", "on_data": true}

- ``keys`` (or ``parameters.keys``): telemetry keys whose arrival triggers an evaluation (also the
  notebook's ``keys`` parameter unless ``parameters`` sets it);
- ``window``: the monitoring window handed to the notebook (``start``/``end`` parameters), ending at the
  newest point (on data) or at the due time (on the schedule); ``every``: at most one evaluation per device
  this often on data (default ``1m``);
- ``schedule`` (optional cron, in ``timezone``): also run for each target device at every due time
  (:mod:`workbench.notebooks.rule_schedule`); ``on_data: false`` leaves only the schedule.

Live, evaluations run on the runner's warm pool in background threads, never in the engine's batch path.
Each finished run's events (alerts become ``fire`` events at their own start time; a run without alerts
clears) carry ``notebook_run_id``, so the alert row links to its executed notebook. When the platform's rule
engine runs, they go through its lifecycle at once (:mod:`workbench.notebooks.rule_delivery`); otherwise
``evaluate`` returns them on its next call. Backtests run the notebook once per device over the whole range
with ``dry_run`` (nothing raised).

Registration: importing this module registers the type. It keeps no platform of its own: runs go to the
:class:`NotebookRunner` of the platform the evaluation context names (``platform.services.notebooks``, set by
:func:`workbench.notebooks.service.init_notebooks`), and their events to that platform's rule engine.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from croniter import croniter
from sqlalchemy import text

from workbench.notebooks.parameters import ParameterError, check, supplied
from workbench.notebooks.result import NotebookResult
from workbench.notebooks.runner import NotebookRunner, default_root, run_notebook_rule
from workbench.platform import Platform
from workbench.rules.conditions import Errors, parse_window
from workbench.rules.types import (
    EvalContext,
    Points,
    Rule,
    RuleState,
    RuleType,
    empty_events,
    register_rule_type,
)

log = logging.getLogger(__name__)
EVENT_COLUMNS = ("device_id", "kind", "ts", "key", "value", "threshold", "notebook_run_id", "message")
FIELDS = {"notebook", "parameters", "window", "every", "keys", "schedule", "timezone", "on_data"}


def runner_of(platform: Platform | None) -> NotebookRunner:
    """The notebook runner of ``platform``; a clear error when there is no platform or it has none."""
    runner = platform.services.notebooks if platform is not None else None
    if runner is None:
        raise RuntimeError(
            "notebook rules run on the platform's notebook runner: call init_notebooks() at start"
        )
    return runner


def events_of(result: NotebookResult, device_id: str, end_ns: int) -> list[dict[str, Any]]:
    """Engine events from one run: a ``fire`` per alert; a ``clear`` at ``end_ns`` when none is ongoing."""
    events = []
    for alert in result.alerts:
        events.append(
            {
                "device_id": device_id,
                "kind": "fire",
                "ts": int(pd.Timestamp(alert.at).value),
                "key": alert.key,
                "value": alert.value,
                "threshold": alert.threshold,
                "notebook_run_id": str(result.run_id),
                "message": alert.message,
                "ongoing": bool(alert.metadata.get("ongoing")),
            }
        )
        if alert.end is not None and not alert.metadata.get("ongoing"):
            events.append({**events[-1], "kind": "clear", "ts": int(pd.Timestamp(alert.end).value) + 1000})
    if result.ok and not any(alert.metadata.get("ongoing") for alert in result.alerts):
        events.append(
            {
                "device_id": device_id,
                "kind": "clear",
                "ts": end_ns,
                "key": None,
                "value": None,
                "threshold": None,
                "notebook_run_id": str(result.run_id),
                "message": None,
            }
        )
    return events


def _frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    if not events:
        return empty_events()
    return pd.DataFrame(events, columns=list(EVENT_COLUMNS)).sort_values("ts", kind="stable")


class NotebookRuleType(RuleType):
    """Rules whose condition is a parameterized notebook of ``rules/``."""

    name = "notebook"
    streaming = True

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="notebook-rule")
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Future[list[dict[str, Any]]]] = {}
        self._held: dict[str, list[dict[str, Any]]] = {}  # events of finished runs no engine took yet
        self._scheduled: dict[tuple[str, str], int] = {}  # end of the last scheduled window (ns)

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field; empty when valid."""
        errors: Errors = {}
        notebook = condition.get("notebook")
        if not isinstance(notebook, str) or not notebook.endswith(".ipynb"):
            errors["condition.notebook"] = "name a notebook, such as rules/ewma.ipynb"
        else:
            root = default_root().resolve()
            path = (root / notebook).resolve()
            if not path.is_relative_to(root / "rules") or not path.is_file():
                errors["condition.notebook"] = f"no notebook {notebook} in rules/"
            else:
                try:
                    check(path, condition.get("parameters", {}), label=notebook)
                except ParameterError as error:
                    errors["condition.parameters"] = str(error)
        if not isinstance(condition.get("parameters", {}), dict):
            errors["condition.parameters"] = "an object of notebook parameters"
        for field, default in (("window", "1h"), ("every", "1m")):
            try:
                parse_window(condition.get(field, default))
            except ValueError as error:
                errors[f"condition.{field}"] = str(error)
        if not self.keys(condition):
            errors["condition.keys"] = "list the telemetry keys whose arrival triggers the notebook"
        cron = condition.get("schedule")
        if cron is not None and (not isinstance(cron, str) or not croniter.is_valid(cron)):
            errors["condition.schedule"] = "a cron expression such as '*/5 * * * *'"
        try:
            ZoneInfo(str(condition.get("timezone", "UTC")))
        except (ZoneInfoNotFoundError, ValueError):
            errors["condition.timezone"] = "an IANA time zone such as Europe/Madrid"
        if not isinstance(condition.get("on_data", True), bool):
            errors["condition.on_data"] = "true or false"
        elif condition.get("on_data") is False and cron is None:
            errors["condition.on_data"] = "a rule that ignores new data needs a schedule"
        for extra in sorted(set(condition) - FIELDS):
            errors[f"condition.{extra}"] = "unknown field"
        return errors

    def keys(self, condition: dict[str, Any]) -> set[str]:
        """Trigger keys: ``keys``, else the notebook's ``keys`` parameter."""
        parameters = condition.get("parameters") if isinstance(condition.get("parameters"), dict) else {}
        keys = condition.get("keys") or (parameters or {}).get("keys") or []
        return {str(key) for key in ([keys] if isinstance(keys, str) else keys)}

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Start runs for devices with new data (throttled by ``every``); events of finished runs that no
        running engine took yet."""
        if rule.condition.get("on_data") is False:
            return _frame(self._collect(rule.id))
        platform = state.context.platform
        runner_of(platform)  # before any device is marked as evaluated
        every_ns = int(parse_window(rule.condition.get("every", "1m")) * 1e9)
        window = pd.Timedelta(seconds=parse_window(rule.condition.get("window", "1h")))
        frame = (
            pd.DataFrame({"device_id": points.device_id, "ts": points.ts}).groupby("device_id")["ts"].max()
        )
        for device_id, newest in frame.items():
            device = str(device_id)
            last = int(state.devices.get(device, {}).get("evaluated_ns", 0))
            with self._lock:
                busy = (rule.id, device) in self._pending
            if busy or newest - last < every_ns:
                continue
            state.put(device, {"evaluated_ns": int(newest)})
            end = pd.Timestamp(int(newest) + 1000, tz="UTC")  # just past the newest point (µs)
            # Windows overlap from one evaluation to the next: alerts that began and ended before the
            # previous evaluation were already reported by it.
            self._submit(platform, rule, device, end - window, end, last)
        return _frame(self._collect(rule.id))

    def run_due(self, platform: Platform, rule: Rule, devices: list[str], due: pd.Timestamp) -> int:
        """Start a scheduled run on ``platform`` for each device over the ``window`` ending at ``due``; how
        many started (a device whose previous run is still going is skipped)."""
        window = pd.Timedelta(seconds=parse_window(rule.condition.get("window", "1h")))
        end = pd.Timestamp(due).tz_convert("UTC")
        started = 0
        for device in devices:
            with self._lock:
                if (rule.id, device) in self._pending:
                    continue
                since = self._scheduled.get((rule.id, device), 0)
                self._scheduled[(rule.id, device)] = int(end.value)
            self._submit(platform, rule, device, end - window, end, since)
            started += 1
        return started

    def _submit(
        self,
        platform: Platform | None,
        rule: Rule,
        device: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        since: int,
    ) -> None:
        runner = runner_of(platform)
        future = self._executor.submit(self._run, runner, rule, device, start, end, False, since)
        with self._lock:
            self._pending[(rule.id, device)] = future
        future.add_done_callback(lambda done: self._hand_over(platform, rule, (rule.id, device), done))

    def _hand_over(
        self,
        platform: Platform | None,
        rule: Rule,
        pair: tuple[str, str],
        future: Future[list[dict[str, Any]]],
    ) -> None:
        """A run finished: its events go through the running engine now, else wait for ``evaluate``."""
        from workbench.notebooks.rule_delivery import deliver

        try:
            events = future.result()
        except Exception:  # a broken notebook is recorded in notebook_runs; the engine goes on
            log.exception("notebook rule %s failed for device %s", rule.id, pair[1])
            events = []
        delivered = not events
        if events and platform is not None:
            try:
                delivered = deliver(platform, rule, _frame(events))
            except Exception:
                log.exception("notebook rule %s: could not apply the events of a run", rule.id)
        with self._lock:
            if not delivered:
                self._held.setdefault(rule.id, []).extend(events)
            if self._pending.get(pair) is future:
                del self._pending[pair]

    def _collect(self, rule_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return self._held.pop(rule_id, [])

    def _run(
        self,
        runner: NotebookRunner,
        rule: Rule,
        device: str,
        start: pd.Timestamp,
        end: pd.Timestamp,
        dry: bool,
        since_ns: int = 0,
    ) -> list[Any]:
        condition = rule.condition
        notebook, _ = runner.resolve(Path(condition["notebook"]))
        parameters = dict(condition.get("parameters") or {})
        if condition.get("keys") and "keys" not in parameters:  # the notebook watches what the rule does
            parameters.update(supplied(notebook, {"keys": sorted(self.keys(condition))}))
        result = run_notebook_rule(
            runner,
            notebook,
            parameters,
            device,
            start,
            end,
            rule_id=_uuid(rule.id),
            dry_run=dry,
        )
        events = events_of(result, device, int(end.value))
        return [
            event for event in events if event["kind"] == "clear" or event["ts"] >= since_ns or _open(event)
        ]

    def wait(self, timeout: float = 60) -> None:
        """Block until every started run has finished and been handed over (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return
            time.sleep(0.01)

    def backtest(
        self, rule: Rule, engine: Any, start_ns: int, end_ns: int, context: EvalContext | None = None
    ) -> pd.DataFrame | None:
        """Run the notebook once per target device over the whole range, as a dry run, on the runner of the
        context's platform."""
        from workbench.rules.store import DeviceDirectory

        runner = runner_of(context.platform if context is not None else None)
        directory = DeviceDirectory(engine)
        directory.refresh()
        devices = directory.matching(rule.target, rule.device_id)
        if devices is None:
            with engine.connect() as conn:
                rows = conn.execute(
                    text(
                        "SELECT DISTINCT device_id FROM telemetry WHERE key = ANY(:keys)"
                        " AND timestamp >= :start AND timestamp < :end"
                    ),
                    {
                        "keys": sorted(self.keys(rule.condition)),
                        "start": pd.Timestamp(start_ns, tz="UTC").to_pydatetime(),
                        "end": pd.Timestamp(end_ns, tz="UTC").to_pydatetime(),
                    },
                )
                devices = {str(row[0]) for row in rows}
        start, end = pd.Timestamp(start_ns, tz="UTC"), pd.Timestamp(end_ns, tz="UTC")
        events: list[dict[str, Any]] = []
        for device in sorted(devices):
            events.extend(self._run(runner, rule, device, start, end, True))
        return _frame(events)


def _open(event: dict[str, Any]) -> bool:
    return bool(event.get("ongoing"))


def _uuid(value: str) -> Any:
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None


register_rule_type(NotebookRuleType)
