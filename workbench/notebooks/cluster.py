"""Dask distributed for executions and heavy analytics: a small LocalCluster by default, created lazily.

What goes to Dask: notebook runs asked for with ``mode="dask"`` (long backtests, reports, anything that
should not hold a warm kernel) and ``api.dask_telemetry`` computations inside notebooks. Scheduled and
on-data rule evaluations stay on the in-process warm pool: they are small and latency matters.
With ``WORKBENCH_DASK_SCHEDULER=tcp://host:8786`` work goes to that cluster instead; its workers must
see the same repository and data directory (a shared volume) and reach the database.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_clients: dict[str, Any] = {}


def dask_client(scheduler: str | None = None) -> Any:
    """A connected ``distributed.Client``: to ``scheduler`` when given, else to a lazily created
    in-process LocalCluster (one worker, two threads: small, no extra processes)."""
    from distributed import Client, LocalCluster

    name = scheduler or "local"
    with _lock:
        client = _clients.get(name)
        if client is not None and client.status == "running":
            return client
        if scheduler:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        else:
            cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
            client = Client(cluster, set_as_default=False)
        _clients[name] = client
        return client


def close_clients() -> None:
    """Close every client (and the local cluster) this process created."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        cluster = client.cluster
        client.close()
        if cluster is not None:
            cluster.close()
