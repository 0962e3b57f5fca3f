"""Dask distributed for executions and heavy analytics: a small LocalCluster by default, created lazily.

What goes to Dask: notebook runs asked for with ``mode="dask"`` (long backtests, reports, anything that
should not hold a warm kernel) and ``api.dask_telemetry`` computations inside notebooks. Scheduled and
on-data rule evaluations stay on the in-process warm pool: they are small and latency matters.
With ``WORKBENCH_DASK_SCHEDULER=tcp://host:8786`` work goes to that cluster instead; its workers must
see the same repository and data directory (a shared volume) and reach the database.
"""

from __future__ import annotations

from typing import Any


def dask_client(scheduler: str | None = None) -> Any:
    """A new connected ``distributed.Client``: to ``scheduler`` when given, else to an in-process
    LocalCluster (one worker, two threads: small, no extra processes). Its owner (the platform's notebook
    runner) keeps it and closes it with :func:`close_client`."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="10s", set_as_default=False)
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    return Client(cluster, set_as_default=False)


def close_client(client: Any) -> None:
    """Close ``client`` and the local cluster it started, if any."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()
