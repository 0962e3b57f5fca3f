"""Fixtures for connector tests: an engine on the session database and a polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from workbench.db.engine import make_engine


@pytest.fixture(scope="module")
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the session's migrated database."""
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
