"""The rule-type registry and the interface every rule type implements.

A rule type is a class registered with :func:`register_rule_type` (built-ins go through the same door as
third-party code, e.g. the notebook rules)::

    class MyType(RuleType):
        name = "mytype"
        streaming = True            # evaluated on committed telemetry batches (False: scheduled/on demand)

        def validate(self, condition) -> dict[str, str]:
            # {"condition.field": "what is wrong"}; empty when valid
        def keys(self, condition) -> set[str]:
            # telemetry keys the rule reads (the engine hands it only rows of these keys)
        def evaluate(self, rule, points, state) -> pd.DataFrame:
            # points: Points (numpy arrays device, device_id, key, ts in int64 ns, value; .frame() for a
            #   DataFrame) of one batch or backtest step, for the rule's keys and target devices;
            #   points.ordered says they are sorted by (device, ts); rules reading the same keys of the
            #   same devices are handed the same Points: read them, never modify them in place
            # state: RuleState (per-device JSON persisted in rule_state, in-memory scratch in memory,
            #   and state.context: EvalContext, what the engine lends: codes, windows, window_loader, ...)
            # returns events (EVENT_COLUMNS, build with events_frame): kind "fire" or "clear" per device,
            #   with ts (ns), key, value and threshold; the engine decides alerts from them
        def warm(self, rule, state, device_ids, now_ns) -> None:
            # optional: prepare in-memory state at engine start (statistical rules load their windows)
        def pending(self, state) -> bool:
            # optional: work is waiting without new points (a background history load finished); the
            #   engine then calls evaluate() with no points. The engine lends state.context.background
            #   (a HistoryLoader that wakes it when such work is ready): read history there, never on
            #   the evaluation thread, which every rule's alerts wait for
        def retire(self, rule, state) -> None:
            # optional: the rule changed or went (its state is dropped): let go of state shared with others
        def backtest(self, rule, engine, start_ns, end_ns, context) -> pd.DataFrame | None:
            # events over a historical range (query PostgreSQL through ``engine``; context: the EvalContext,
            #   with the platform when one runs); the default returns None, and the stored telemetry is
            #   replayed through evaluate() (in backtest_step_seconds steps)

Schedule-like types set ``streaming = False``; the scheduler runs the rule's actions (an action plugin such
as a report renderer registers through ``workbench.rules.actions.register_action``).
The engine turns events into alerts (lifecycle: dedup, cooldown, auto-resolve) the same way live and in
backtests, so a backtest shows exactly what the live engine would have raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from workbench import plugins
from workbench.rules.codes import DeviceCodes
from workbench.rules.conditions import DEFAULT_MESSAGE, Errors
from workbench.rules.history import HistoryLoader
from workbench.rules.windows import WindowBook, WindowLoader
from workbench.severity import SEVERITIES

if TYPE_CHECKING:  # the platform's own module knows the rule engine
    from workbench.platform import Platform

EVENT_COLUMNS = ("device_id", "kind", "ts", "key", "value", "threshold")


_EMPTY = pd.DataFrame(
    {
        "device_id": pd.Series(dtype=object),
        "kind": pd.Series(dtype=object),
        "ts": pd.Series(dtype="int64"),
        "key": pd.Series(dtype=object),
        "value": pd.Series(dtype="float64"),
        "threshold": pd.Series(dtype="float64"),
    }
)


def empty_events() -> pd.DataFrame:
    """An events frame with no rows (shared: do not modify it)."""
    return _EMPTY


def events_frame(device_id: Any, kind: Any, ts: Any, key: Any, value: Any, threshold: Any) -> pd.DataFrame:
    """An events frame from columns (arrays or scalars), sorted by event time (stable)."""
    columns = dict(zip(EVENT_COLUMNS, (device_id, kind, ts, key, value, threshold), strict=True))
    stamps = np.asarray(ts)
    if stamps.ndim and len(stamps) > 1 and bool((stamps[1:] < stamps[:-1]).any()):
        # Sorted in numpy before the frame is built: a pandas sort costs more than the frame itself.
        order = np.argsort(stamps, kind="stable")
        columns = {name: np.asarray(c)[order] if np.ndim(c) else c for name, c in columns.items()}
    return pd.DataFrame(columns)


@dataclass
class Points:
    """Points handed to a rule type: parallel numpy arrays (``frame()`` gives a DataFrame when handier)."""

    device: np.ndarray  # int64 device codes (``workbench.rules.codes``), for array-indexed state
    device_id: np.ndarray  # object: device id strings
    key: np.ndarray  # object: key strings
    ts: np.ndarray  # int64: event time, nanoseconds since the epoch (UTC)
    value: np.ndarray  # float64
    ordered: bool = False  # already sorted by (device, ts): evaluators may skip their sort
    _tails: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ts)

    def tails(self) -> tuple[np.ndarray, np.ndarray]:
        """Each device's newest point, (device codes, times), of ordered points (computed once: rules
        reading the same points share them)."""
        if self._tails is None:
            last = np.ones(len(self.device), dtype=bool)
            last[:-1] = self.device[1:] != self.device[:-1]
            self._tails = (self.device[last], self.ts[last])
        return self._tails

    def take(self, rows: np.ndarray) -> Points:
        """The points at these positions (or where this boolean mask is true)."""
        return Points(
            self.device[rows], self.device_id[rows], self.key[rows], self.ts[rows], self.value[rows]
        )

    def frame(self) -> pd.DataFrame:
        """As a DataFrame with a ``timestamp`` column (UTC)."""
        return pd.DataFrame(
            {
                "timestamp": pd.to_datetime(self.ts, utc=True),
                "device_id": self.device_id,
                "key": self.key,
                "value": self.value,
                "ts": self.ts,
            }
        )


@dataclass
class Rule:
    """A rule as the engine uses it (one row of ``rules``)."""

    id: str
    name: str
    type: str
    condition: dict[str, Any]
    actions: list[dict[str, Any]]
    target: dict[str, Any] | None = None
    device_id: str | None = None
    enabled: bool = True
    priority: int = 50
    cooldown_seconds: int = 300
    auto_resolve: bool = True
    updated_at: datetime | None = None

    @property
    def severity(self) -> str:
        """Severity of the alerts this rule raises (first action that names one; else warning)."""
        for action in self.actions:
            if action.get("severity") in SEVERITIES:
                return str(action["severity"])
        return "warning"

    @property
    def message(self) -> str:
        """Message template of the alerts this rule raises."""
        for action in self.actions:
            if isinstance(action.get("message"), str) and action["message"]:
                return str(action["message"])
        return DEFAULT_MESSAGE

    @classmethod
    def from_row(cls, row: Any) -> Rule:
        """Build from a ``rules`` row mapping."""
        action = row["action"]
        return cls(
            id=str(row["id"]),
            name=row["name"],
            type=row["type"],
            condition=dict(row["condition"] or {}),
            actions=normalise_actions(action),
            target=row["target"],
            device_id=str(row["device_id"]) if row["device_id"] else None,
            enabled=row["enabled"],
            priority=row["priority"],
            cooldown_seconds=row["cooldown_seconds"],
            auto_resolve=row["auto_resolve"],
            updated_at=row["updated_at"],
        )


def normalise_actions(action: Any) -> list[dict[str, Any]]:
    """A rule's ``action`` JSON (one object or a list of them) as a list of action objects."""
    if isinstance(action, list):
        return [dict(a) for a in action if isinstance(a, dict)]
    if isinstance(action, dict):
        return [dict(action)]
    return []


@dataclass
class EvalContext:
    """What the engine (or a backtest) lends a rule's evaluations; a rule's own scratch is ``memory``."""

    codes: DeviceCodes | None = None  # device ids as small ints, shared by every rule of an engine
    windows: WindowBook | None = None  # the engine's shared windows (statistical rules)
    window_loader: WindowLoader | None = None  # reads a window's stored history (SQL aggregates)
    reference: Callable[[str], float] | None = None  # a typical value of a key (keeps window sums tame)
    background: HistoryLoader | None = None  # runs history reads off the evaluation thread
    platform: Platform | None = None  # the running platform (its services: notebook runner, rule engine)

    def device_codes(self) -> DeviceCodes:
        """The shared device codes (a rule's own when no engine lends them)."""
        if self.codes is None:
            self.codes = DeviceCodes()
        return self.codes

    def window_book(self) -> WindowBook:
        """The shared windows (a rule's own book when no engine lends one)."""
        if self.windows is None:
            self.windows = WindowBook(private=True)
        return self.windows


@dataclass
class RuleState:
    """Per-device state of one rule: ``devices`` persists in ``rule_state``, ``memory``, ``context`` not."""

    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    context: EvalContext = field(default_factory=EvalContext)
    dirty: set[str] = field(default_factory=set)

    def put(self, device_id: str, value: dict[str, Any], persist: bool = True) -> None:
        """Set a device's state; ``persist`` marks it for writing to the database."""
        self.devices[device_id] = value
        if persist:
            self.dirty.add(device_id)


class RuleType:
    """Base class of rule types (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    streaming: ClassVar[bool] = True

    def validate(self, condition: dict[str, Any]) -> Errors:
        """Errors naming the field (``condition.x``); empty when the condition is valid."""
        raise NotImplementedError

    def keys(self, condition: dict[str, Any]) -> set[str]:
        """Telemetry keys the rule reads."""
        return {str(condition["key"])} if "key" in condition else set()

    def devices(self, rule: Rule) -> set[str] | None:
        """Devices whose points the rule reads beyond its target (comparison rules); None: the target."""
        return None

    def evaluate(self, rule: Rule, points: Points, state: RuleState) -> pd.DataFrame:
        """Events (EVENT_COLUMNS) raised by ``points`` given ``state`` (which it updates)."""
        raise NotImplementedError

    def warm(self, rule: Rule, state: RuleState, device_ids: list[str], now_ns: int) -> None:
        """Prepare in-memory state at engine start (before live batches); nothing by default."""

    def pending(self, state: RuleState) -> bool:
        """Whether ``evaluate`` has work to do without new points (e.g. a history load finished)."""
        return False

    def retire(self, rule: Rule, state: RuleState) -> None:
        """The rule changed or was disabled or deleted: let go of state it shares; nothing by default."""

    def backtest(
        self, rule: Rule, engine: Any, start_ns: int, end_ns: int, context: EvalContext | None = None
    ) -> pd.DataFrame | None:
        """Events over a historical range, or None to replay stored telemetry through ``evaluate``."""
        return None

    def backtest_step_seconds(self, condition: dict[str, Any]) -> float | None:
        """Replay history in steps of this many seconds (None: one step, the evaluator is exact)."""
        return None

    def from_form(self, values: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The condition and target device of the Rules page's form values (types without a form raise)."""
        raise NotImplementedError


KIND = "rule_type"  # in workbench.plugins
# The built-in rule types: each is the module of that name in workbench.rules.
BUILTINS = ("threshold", "comparison", "statistical", "schedule")


# The notebook rule type ships with the platform too: loaded by name like the others (and like plugins), so
# whatever looks a rule type up finds it without having imported the notebook runner first.
BUILTIN_MODULES = (*(f"workbench.rules.{m}" for m in BUILTINS), "workbench.notebooks.rule_type")

RULE_TYPES: plugins.Kind[RuleType] = plugins.Kind(KIND, BUILTIN_MODULES)


def register_rule_type(rule_type: RuleType | type[RuleType]) -> RuleType:
    """Register a rule type (an instance or a class); returns the instance. Replaces one of the same name."""
    instance = rule_type() if isinstance(rule_type, type) else rule_type
    return RULE_TYPES.register(instance.name, instance)


def rule_type(name: str) -> RuleType:
    """The registered rule type called ``name`` (KeyError when unknown)."""
    return RULE_TYPES.get(name)


def rule_types() -> dict[str, RuleType]:
    """Every registered rule type by name: the built-ins first, in a fixed order, then the others."""
    rank = {name: i for i, name in enumerate(BUILTINS)}
    return dict(sorted(RULE_TYPES.all().items(), key=lambda item: rank.get(item[0], len(rank))))


def form_types() -> list[str]:
    """Names of the registered rule types the Rules page's form builds (those implementing ``from_form``)."""
    return [name for name, t in rule_types().items() if type(t).from_form is not RuleType.from_form]


def new_id() -> str:
    """A fresh rule or alert id."""
    return str(uuid.uuid4())
