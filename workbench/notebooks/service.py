"""Wiring for the composition root: one notebook runner per platform, shared by rules, reports and the API."""

from __future__ import annotations

from workbench.notebooks.runner import NotebookRunner
from workbench.platform import Platform

SERVICE = "notebooks"  # its health check's name


def init_notebooks(platform: Platform) -> NotebookRunner:
    """Create the platform's runner (warm kernels start lazily; notebook rules of this platform run on it),
    register the ``notebook`` rule type, and start the notebook rules' cron (idle until a rule engine runs
    here). Call once from ``create_app``; :func:`close_notebooks` at shutdown."""
    import workbench.notebooks.rule_type  # noqa: F401 - importing registers the rule type
    from workbench.notebooks.rule_schedule import NotebookScheduler

    runner = NotebookRunner(platform.settings, engine=platform.engine)
    platform.services.notebooks = runner
    platform.services.notebook_scheduler = NotebookScheduler(platform).start()
    return runner


def notebook_runner(platform: Platform) -> NotebookRunner:
    """The platform's runner (created on first use when the app did not wire it)."""
    runner = platform.services.notebooks
    return runner if runner is not None else init_notebooks(platform)


def close_notebooks(platform: Platform) -> None:
    """Shut the platform's warm kernels and its Dask client down."""
    scheduler, platform.services.notebook_scheduler = platform.services.notebook_scheduler, None
    if scheduler is not None:
        scheduler.stop()
    runner, platform.services.notebooks = platform.services.notebooks, None
    if runner is not None:
        runner.close()
