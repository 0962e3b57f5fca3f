"""What a notebook run gives back: status, the alerts and records it raised, where its executed copy is."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from workbench.notebooks.helpers import ALERT_MIME, RECORD_MIME


class NotebookError(RuntimeError):
    """A notebook could not run or failed; the message names the notebook and the failing cell."""

    def __init__(self, message: str, cell_index: int | None = None, ename: str | None = None) -> None:
        super().__init__(message)
        self.cell_index = cell_index
        self.ename = ename


class NotebookTimeout(NotebookError):
    """A run took longer than its timeout; its kernel was killed and replaced."""


@dataclass(frozen=True)
class AlertRequest:
    """An alert a notebook raised with ``api.alert``: everything the rule engine needs to write the row."""

    severity: str
    message: str
    at: dt.datetime
    value: float | None = None
    threshold: float | None = None
    end: dt.datetime | None = None
    device: str | None = None
    key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> AlertRequest:
        """Build from the JSON the helper API publishes."""
        return cls(
            severity=payload["severity"],
            message=payload["message"],
            at=dt.datetime.fromisoformat(payload["at"]),
            value=payload.get("value"),
            threshold=payload.get("threshold"),
            end=dt.datetime.fromisoformat(payload["end"]) if payload.get("end") else None,
            device=payload.get("device"),
            key=payload.get("key"),
            metadata=payload.get("metadata") or {},
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (ISO 8601 times)."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["end"] = self.end.isoformat() if self.end else None
        return data


@dataclass
class NotebookResult:
    """One execution: ``status`` is ``ok``, ``failed`` or ``timeout``; ``alerts`` are the alerts raised
    (would-be alerts when ``dry_run``); ``output_path`` is the executed notebook kept as evidence."""

    run_id: uuid.UUID
    notebook: str
    status: str
    parameters: dict[str, Any]
    alerts: list[AlertRequest] = field(default_factory=list)
    records: dict[str, Any] = field(default_factory=dict)
    output_path: str | None = None
    duration_ms: float = 0.0
    error: str | None = None
    failed_cell: int | None = None
    notebook_hash: str | None = None
    dry_run: bool = False
    rule_id: uuid.UUID | None = None
    report_id: uuid.UUID | None = None
    mode: str = "warm"
    stages: dict[str, float] = field(default_factory=dict)  # ms: prepare, execute, save, record

    @property
    def ok(self) -> bool:
        """Whether the notebook ran to the end."""
        return self.status == "ok"

    def raise_for_status(self) -> NotebookResult:
        """Raise :class:`NotebookError` (naming the failing cell) unless the run succeeded."""
        if self.status == "timeout":
            raise NotebookTimeout(self.error or "timed out", self.failed_cell)
        if self.status != "ok":
            raise NotebookError(self.error or "failed", self.failed_cell)
        return self

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form for the API."""
        return {
            "id": str(self.run_id),
            "notebook": self.notebook,
            "status": self.status,
            "parameters": self.parameters,
            "alerts": [alert.to_json() for alert in self.alerts],
            "records": self.records,
            "output_path": self.output_path,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "failed_cell": self.failed_cell,
            "notebook_hash": self.notebook_hash,
            "dry_run": self.dry_run,
            "rule_id": str(self.rule_id) if self.rule_id else None,
            "mode": self.mode,
        }


def collect_outputs(nb: Any) -> tuple[list[AlertRequest], dict[str, Any]]:
    """The alerts and records an executed notebook published, in order."""
    alerts: list[AlertRequest] = []
    records: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            alerts.extend(AlertRequest.from_payload(dict(item)) for item in _items(data, ALERT_MIME))
            records.update((item["name"], item["value"]) for item in _items(data, RECORD_MIME))
    return alerts, records


def _items(data: dict[str, Any], mime: str) -> list[Any]:
    """The payloads under ``mime``: a list (one output per cell), or one item (notebooks run before)."""
    found = data.get(mime)
    if found is None:
        return []
    return list(found) if isinstance(found, list) else [found]


def describe_failure(notebook: str, cell_index: int, source: str, ename: str, evalue: str) -> str:
    """One clear line: which notebook, which cell (1-based, as Jupyter shows them), which error."""
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > 80:
        first = first[:77] + "..."
    return f"{notebook}: cell {cell_index + 1} failed with {ename}: {evalue} (cell begins `{first}`)"
