"""Fixtures of the live tests: a served app and users of each role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from tests.workbench.live.serving import serve
from workbench.platform import EXTENSION, Platform


@pytest.fixture(scope="module")
def base_url(app: Flask) -> Iterator[str]:
    """The session app served over HTTP and WebSocket."""
    with serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def platform(app: Flask) -> Platform:
    """The served app's platform (bus, engine)."""
    found: Platform = app.extensions[EXTENSION]
    return found
