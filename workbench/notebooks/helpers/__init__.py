"""The helper library notebooks import: read telemetry, raise alerts, record values.

``from workbench.notebooks import helpers`` inside a rule, report or analyst notebook (``import api``, its
former name, still works). The runner starts each
kernel with ``WORKBENCH_DATABASE_URL`` set (so does ``workbench lab``), and ``WORKBENCH_DATABASE_READ_URL``
when a streaming replica serves reads: reports, backtests and the lab read from it, live rule runs (which must
see the points just written) and writes go to the primary. Alerts and records are published as
display data with workbench MIME types (JSON lists; one output per cell, at the cell's end, with a text line
per item for people): they stay in the executed notebook as evidence and the runner reads them back from
there, whichever way the notebook ran (warm kernel, plain papermill, a Dask worker).

The names live in one module per role: :mod:`.data` (reading), :mod:`.outputs` (alerts, records, the run's
context), :mod:`.episodes` (scores into alert episodes); notebooks use them all from here.
"""

from __future__ import annotations

from workbench.notebooks.helpers.data import (
    DATABASE_ENV,
    READ_DATABASE_ENV,
    REPLICA_READS,
    dask_telemetry,
    database_url,
    device_id,
    devices,
    read_url,
    telemetry,
    timestamp,
    use_read_database,
)
from workbench.notebooks.helpers.episodes import Windows, alert_episodes, beyond, episodes, windows
from workbench.notebooks.helpers.outputs import (
    ALERT_MIME,
    CONTEXT_ENV,
    RECORD_MIME,
    _begin,
    _jsonable,
    alert,
    collected,
    context,
    record,
    save_rule,
)

__all__ = [
    "ALERT_MIME",
    "CONTEXT_ENV",
    "DATABASE_ENV",
    "READ_DATABASE_ENV",
    "RECORD_MIME",
    "REPLICA_READS",
    "Windows",
    "_begin",
    "_jsonable",
    "alert",
    "alert_episodes",
    "beyond",
    "collected",
    "context",
    "dask_telemetry",
    "database_url",
    "device_id",
    "devices",
    "episodes",
    "read_url",
    "record",
    "save_rule",
    "telemetry",
    "timestamp",
    "use_read_database",
    "windows",
]
