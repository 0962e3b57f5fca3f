"""Wiring for the composition root: one notebook runner per platform, shared by rules, reports and the API."""

from __future__ import annotations

from workbench.notebooks.runner import NotebookRunner
from workbench.platform import Platform

SERVICE = "notebooks"


def init_notebooks(platform: Platform) -> NotebookRunner:
    """Create the platform's runner (warm kernels start lazily), register the ``notebook`` rule type and
    point it at the runner. Call once from ``create_app``; :func:`close_notebooks` at shutdown."""
    from workbench.notebooks import rule_type  # importing registers the rule type

    runner = NotebookRunner(platform.settings, engine=platform.engine)
    platform.services[SERVICE] = runner
    rule_type.use_runner(runner)
    return runner


def notebook_runner(platform: Platform) -> NotebookRunner:
    """The platform's runner (created on first use when the app did not wire it)."""
    runner = platform.services.get(SERVICE)
    return runner if isinstance(runner, NotebookRunner) else init_notebooks(platform)


def close_notebooks(platform: Platform) -> None:
    """Shut the warm kernels and any Dask client down."""
    from workbench.notebooks import rule_type
    from workbench.notebooks.cluster import close_clients

    runner = platform.services.pop(SERVICE, None)
    if isinstance(runner, NotebookRunner):
        rule_type.release_runner(runner)
        runner.close()

    close_clients()
