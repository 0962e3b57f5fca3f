"""The helper report notebooks import: read plant data for the report window, hash it, hand tables over.

A report notebook builds one ``ReportKit`` from its parameters, reads through it (so the platform knows a
hash of exactly the data the report saw) and registers the tables the Excel and CSV formats export. On
``finish()`` the kit writes ``manifest.json`` and the tables into ``report_dir``, which the renderer reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Engine, bindparam, text

from workbench.db.engine import make_engine
from workbench.notebooks import helpers

MANIFEST = "manifest.json"
TABLES = "tables"


def parse_instant(value: str, tz: ZoneInfo) -> pd.Timestamp:
    """An ISO 8601 instant; a value without offset is read in the report's timezone."""
    stamp = pd.Timestamp(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(tz)
    return stamp.tz_convert("UTC")


@dataclass
class Table:
    """One exported table: a summary sheet (``device`` None) or a device's raw or aggregated data."""

    name: str
    frame: pd.DataFrame
    device: str | None = None
    kind: str = "summary"


@dataclass
class ReportKit:
    """Reads the report window's devices, telemetry and alerts; hashes what it read; collects tables."""

    database_url: str
    start: str
    end: str
    timezone: str = "UTC"
    devices: Sequence[str] = ()
    area: str = ""
    report_dir: str = ""
    title: str = "Report"
    tables: list[Table] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The platform passes the databases through the kernel's environment, never as parameters. A report
        # only reads, and reads a closed window: the streaming replica serves it when there is one.
        self.database_url = (
            self.database_url
            or os.environ.get(helpers.READ_DATABASE_ENV, "")
            or os.environ.get(helpers.DATABASE_ENV, "")
        )
        if not self.database_url:
            raise RuntimeError("no database: set the database_url parameter or WORKBENCH_DATABASE_URL")
        self.tz = ZoneInfo(self.timezone or "UTC")
        self.start_utc = parse_instant(self.start, self.tz)
        self.end_utc = parse_instant(self.end, self.tz)
        if self.end_utc <= self.start_utc:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        self._hash = hashlib.sha256()
        self._engine: Engine | None = None
        self._devices: pd.DataFrame | None = None

    @property
    def engine(self) -> Engine:
        """The database engine (one small pool per kit)."""
        if self._engine is None:
            self._engine = make_engine(self.database_url, pool_size=1)
        return self._engine

    def _read(self, sql: str, params: dict[str, Any], expanding: Iterable[str] = ()) -> pd.DataFrame:
        statement = text(sql)
        for name in expanding:
            statement = statement.bindparams(bindparam(name, expanding=True))
        with self.engine.connect() as conn:
            frame = pd.read_sql_query(statement, conn, params=params)
        self._digest(sql, frame)
        return frame

    def _digest(self, label: str, frame: pd.DataFrame) -> None:
        # Order-sensitive on purpose: every query here has a deterministic ORDER BY.
        self._hash.update(label.encode())
        self._hash.update(json.dumps([str(c) for c in frame.columns]).encode())
        if len(frame):
            hashed = pd.util.hash_pandas_object(frame.astype(str), index=False)
            self._hash.update(hashed.to_numpy().tobytes())

    @property
    def data_hash(self) -> str:
        """SHA-256 over everything read so far."""
        return self._hash.hexdigest()

    def local(self, series: pd.Series) -> pd.Series:
        """Timestamps converted to the report's timezone."""
        return pd.to_datetime(series, utc=True).dt.tz_convert(self.tz)

    def device_list(self) -> pd.DataFrame:
        """The devices in scope (by name or id, else by area, else all), ordered by name."""
        if self._devices is not None:
            return self._devices
        where: list[str] = ["TRUE"]
        params: dict[str, Any] = {}
        expanding: list[str] = []
        if self.devices:
            where.append("(name IN :devices OR id::text IN :devices)")
            params["devices"] = list(self.devices)
            expanding.append("devices")
        if self.area:
            where.append("area = :area")
            params["area"] = self.area
        frame = self._read(
            "SELECT id::text AS device_id, name, type, area, location, status, last_seen FROM devices "
            f"WHERE {' AND '.join(where)} ORDER BY name, id",
            params,
            expanding,
        )
        frame["last_seen"] = self.local(frame["last_seen"])
        self._devices = frame
        return frame

    def _scope(self) -> tuple[list[str], dict[str, str]]:
        found = self.device_list()
        return list(found["device_id"]), dict(zip(found["device_id"], found["name"], strict=True))

    def telemetry(self, keys: Sequence[str] = ()) -> pd.DataFrame:
        """Telemetry rows in the window for the devices in scope, local timestamps, ordered by time."""
        ids, names = self._scope()
        columns = ["timestamp", "device", "device_id", "key", "value", "unit", "quality"]
        if not ids:
            return self._empty_telemetry()
        helpers.use_read_database(self.database_url)  # the helper API reads where this kit reads
        frames = []
        for ident in ids:
            rows = helpers.telemetry(ident, list(keys) or None, self.start_utc, self.end_utc, wide=False)
            frames.append(rows.assign(device_id=ident))
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if frame.empty:  # typed, so notebooks can use .dt and arithmetic on a quiet window too
            empty = self._empty_telemetry()
            self._digest("telemetry", empty)
            return empty
        # A stable order makes the data hash depend on the data only, not on the query plan.
        frame = frame.sort_values(["timestamp", "device_id", "key"], kind="stable", ignore_index=True)
        self._digest("telemetry", frame)
        units = self._read(
            "SELECT device_id::text AS device_id, key, max(unit) AS unit FROM telemetry "
            'WHERE device_id = ANY(CAST(:ids AS uuid[])) AND "timestamp" >= :start AND "timestamp" < :end '
            "GROUP BY 1, 2 ORDER BY 1, 2",
            {"ids": ids, "start": self.start_utc, "end": self.end_utc},
        )
        frame = frame.merge(units, on=["device_id", "key"], how="left")
        frame["timestamp"] = self.local(frame["timestamp"])
        frame["device"] = frame["device_id"].map(names)
        return frame[columns]

    def _empty_telemetry(self) -> pd.DataFrame:
        text_column = pd.Series(dtype=object)
        return pd.DataFrame(
            {
                "timestamp": pd.Series(dtype=pd.DatetimeTZDtype(tz=self.tz)),
                "device": text_column,
                "device_id": text_column,
                "key": text_column,
                "value": pd.Series(dtype=float),
                "unit": text_column,
                "quality": pd.Series(dtype=float),
            }
        )

    def alerts(self) -> pd.DataFrame:
        """Alerts triggered in the window for the devices in scope, with rule names and local times."""
        ids, names = self._scope()
        columns = [
            "id", "triggered_at", "device", "device_id", "rule", "severity", "status", "message",
            "key", "value", "threshold", "acknowledged_at", "resolved_at",
        ]  # fmt: skip
        # No early return when nothing is in scope: the (empty) query result keeps its column types.
        frame = self._read(
            "SELECT a.id::text AS id, COALESCE(a.triggered_at, a.created_at) AS triggered_at, "
            "a.device_id::text AS device_id, COALESCE(r.name, '(no rule)') AS rule, a.severity, a.status, "
            "a.message, a.key, a.value, a.threshold, a.acknowledged_at, a.resolved_at "
            "FROM alerts a LEFT JOIN rules r ON r.id = a.rule_id "
            "WHERE a.device_id = ANY(CAST(:ids AS uuid[])) "
            "AND COALESCE(a.triggered_at, a.created_at) >= :start "
            "AND COALESCE(a.triggered_at, a.created_at) < :end "
            "ORDER BY 2, a.id",
            {"ids": ids, "start": self.start_utc, "end": self.end_utc},
        )
        for column in ("triggered_at", "acknowledged_at", "resolved_at"):
            frame[column] = self.local(frame[column])
        frame["device"] = frame["device_id"].map(names)
        return frame[columns]

    def sheet(self, name: str, frame: pd.DataFrame) -> None:
        """Export ``frame`` as a summary table (on the Excel summary sheet, a CSV in the ZIP)."""
        self.tables.append(Table(name, frame))

    def device_sheet(self, device: str, raw: pd.DataFrame, aggregated: pd.DataFrame) -> None:
        """Export one device's raw and aggregated data (one Excel sheet per device)."""
        self.tables.append(Table(f"{device} raw", raw, device, "raw"))
        self.tables.append(Table(f"{device} aggregated", aggregated, device, "aggregated"))

    def finish(self) -> dict[str, Any]:
        """Write the manifest and tables for the renderer; returns the manifest."""
        manifest = {
            "title": self.title,
            "data_hash": self.data_hash,
            "timezone": str(self.tz),
            "start": self.start_utc.isoformat(),
            "end": self.end_utc.isoformat(),
            "tables": [],
        }
        if self.report_dir:
            folder = Path(self.report_dir) / TABLES
            folder.mkdir(parents=True, exist_ok=True)
            for number, table in enumerate(self.tables):
                file = f"{number:03d}-{_slug(table.name)}.pkl"
                table.frame.to_pickle(folder / file)
                manifest["tables"].append(
                    {"name": table.name, "device": table.device, "kind": table.kind, "file": file}
                )
            (Path(self.report_dir) / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if self._engine is not None:
            self._engine.dispose()
        return manifest


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:60] or "table"


def load_tables(report_dir: Path) -> tuple[dict[str, Any], list[Table]]:
    """The manifest and tables a notebook's kit left in ``report_dir`` (empty when it used no kit)."""
    path = report_dir / MANIFEST
    if not path.exists():
        return {}, []
    manifest = json.loads(path.read_text())
    tables = [
        Table(item["name"], pd.read_pickle(report_dir / TABLES / item["file"]), item["device"], item["kind"])
        for item in manifest["tables"]
    ]
    return manifest, tables


def styled(frame: pd.DataFrame, caption: str | None = None, precision: int = 2) -> Any:
    """A table that reads well in HTML and PDF: no index, fixed precision, local times without noise."""
    from IPython.display import Markdown

    if frame.empty:
        return Markdown(f"*{caption + ': ' if caption else ''}no rows in this window.*")
    shown = frame.copy()
    for column in shown.columns:
        if isinstance(shown[column].dtype, pd.DatetimeTZDtype):
            shown[column] = shown[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    styler = shown.style.hide(axis="index").format(precision=precision, thousands=",", na_rep="-")
    return styler.set_caption(caption) if caption else styler
