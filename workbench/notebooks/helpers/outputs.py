"""What a notebook hands the platform: alerts, records, rules it saves; the run's context and its reset.

Alerts and records are published as display data with workbench MIME types (one output per cell, at the
cell's end, with a text line per item for people): they stay in the executed notebook as evidence.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from workbench.notebooks.helpers.data import _connection, device_id, timestamp, use_read_database
from workbench.severity import SEVERITIES

ALERT_MIME = "application/vnd.workbench.alert+json"
RECORD_MIME = "application/vnd.workbench.record+json"
CONTEXT_ENV = "WORKBENCH_NOTEBOOK_CONTEXT"

_state: dict[str, Any] = {"alerts": [], "records": {}, "context": {}, "outbox": {}}


def alert(
    severity: str,
    message: str,
    value: float | None = None,
    at: Any = None,
    device: str | uuid.UUID | None = None,
    key: str | None = None,
    *,
    end: Any = None,
    threshold: float | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    """Raise an alert: ``at`` is when the condition began (default now), ``end`` when it cleared if it did.

    The platform turns it into an alert row linked to this executed notebook; in a backtest it is only
    reported as a would-be alert."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    when = timestamp(at) or dt.datetime.now(dt.UTC)
    payload = {
        "severity": severity,
        "message": str(message),
        "value": _jsonable(value),
        "threshold": _jsonable(threshold),
        "at": when.isoformat(),
        "end": _iso(end),
        "device": None if device is None else str(device),
        "key": key,
        "metadata": _jsonable(metadata),
    }
    _state["alerts"].append(payload)
    _publish(ALERT_MIME, payload, f"alert [{severity}] {message} (at {payload['at']})")
    return payload


def save_rule(
    name: str,
    notebook: str,
    parameters: dict[str, Any],
    device: str | uuid.UUID,
    keys: Sequence[str],
    *,
    window: str = "1h",
    every: str = "1m",
    severity: str = "warning",
    enabled: bool = False,
    description: str | None = None,
) -> uuid.UUID:
    """Write a ``notebook`` rule for one device (validated as the rules API does); returns its id.

    It runs ``notebook`` with ``parameters`` on new points of ``keys`` (at most ``every``) over the last
    ``window``; written disabled unless ``enabled``; the engine loads it at its next reload."""
    from psycopg.errors import UniqueViolation
    from psycopg.types.json import Jsonb

    import workbench.notebooks.rule_type  # noqa: F401  (registers the notebook rule type)
    from workbench.rules.validation import validate_rule

    ident = device_id(device)
    body = {
        "name": name,
        "type": "notebook",
        "device_id": str(ident),
        "condition": {
            "notebook": notebook,
            "parameters": _jsonable(parameters),
            "keys": list(keys),
            "window": window,
            "every": every,
        },
        "action": {"type": "alert", "severity": severity},
        "enabled": enabled,
    }
    errors = validate_rule(body)
    if errors:
        raise ValueError(f"invalid rule: {errors}")
    try:
        row = (
            _connection()
            .execute(
                "INSERT INTO rules (name, description, type, device_id, condition, action, enabled)"
                " VALUES (%s, %s, 'notebook', %s, %s, %s, %s) RETURNING id",
                (name.strip(), description, ident, Jsonb(body["condition"]), Jsonb(body["action"]), enabled),
            )
            .fetchone()
        )
    except UniqueViolation:  # the rules' unique name index (workbench.rules.service says the same)
        raise ValueError(f"a rule named {name.strip()!r} exists: rules need distinct names") from None
    return uuid.UUID(str(row[0]))


def record(name: str, value: Any) -> None:
    """Record a named value (a score, a count, a small table) in the run result."""
    clean = _jsonable(value)
    _state["records"][str(name)] = clean
    shown = json.dumps(clean, default=str)
    shown = shown if len(shown) <= 200 else shown[:197] + "..."
    _publish(RECORD_MIME, {"name": str(name), "value": clean}, f"record {name} = {shown}")


def context() -> dict[str, Any]:
    """What the runner told this run: ``run_id``, ``dry_run`` (backtest) and the notebook's path."""
    if not _state["context"] and os.environ.get(CONTEXT_ENV):  # a cold kernel started for this run alone
        _state["context"] = json.loads(os.environ[CONTEXT_ENV])
    return dict(_state["context"])


def collected() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Alerts and records raised since the run began (useful when calling the API outside a kernel)."""
    return list(_state["alerts"]), dict(_state["records"])


def _begin(run_context: dict[str, Any]) -> None:
    """Called by the warm runner before each run: empty the user namespace (variables, imports, output
    history) and forget the previous run's alerts, records and context.

    Cheaper than ``%reset -f``, which forces a full garbage collection (100-300 ms with pandas loaded)."""
    _state["alerts"] = []
    _state["records"] = {}
    _state["outbox"] = {}
    _state["context"] = dict(run_context)
    use_read_database(None)
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    namespace, hidden = shell.user_ns, shell.user_ns_hidden
    for name in [name for name in namespace if name not in hidden and not name.startswith("__")]:
        del namespace[name]
    if isinstance(namespace.get("_oh"), dict):
        namespace["_oh"].clear()
    namespace.update({"_": "", "__": "", "___": ""})
    history = shell.history_manager
    del history.input_hist_parsed[1:], history.input_hist_raw[1:]
    shell.execution_count = 1


def _publish(mime: str, item: dict[str, Any], line: str) -> None:
    """Queue an alert or record for the output published when the current cell ends (inside IPython).

    One display per cell rather than one per item: each display costs the kernel an IOPub round trip and
    a stream flush, and a rule may raise dozens of alerts in one cell."""
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: the collected lists are the result
        return
    shell = get_ipython()
    if shell is None:
        return
    if _flush_outbox not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _flush_outbox)
    box = _state["outbox"]
    box.setdefault(mime, []).append(item)
    box.setdefault("text/plain", []).append(line)


def _flush_outbox(result: Any = None) -> None:
    """Publish the cell's queued alerts and records as one output (runs after every cell, failed or not)."""
    box, _state["outbox"] = _state["outbox"], {}
    if not box:
        return
    from IPython.display import display

    box["text/plain"] = "\n".join(box["text/plain"])
    display(box, raw=True)


def _iso(value: Any) -> str | None:
    stamp = timestamp(value)
    return None if stamp is None else stamp.isoformat()


def _jsonable(value: Any) -> Any:
    """Plain JSON types from numpy, pandas and datetime values (NaN becomes None)."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dt.datetime | pd.Timestamp):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, pd.DataFrame):
        return _jsonable(value.reset_index().to_dict(orient="records"))
    if isinstance(value, pd.Series):
        return _jsonable(value.to_dict())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(item) for item in value]
    return str(value)
