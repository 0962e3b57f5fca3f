"""What every command shares: one line on stderr for any failure."""

from __future__ import annotations

import pytest

from app import StartupError
from cli.common import guarded


def test_an_unforeseen_start_up_failure_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    import psycopg
    from sqlalchemy.exc import DataError

    def broken() -> None:
        orig = psycopg.errors.NumericValueOutOfRange("value out of range: overflow\nCONTEXT: SQL function")
        raise DataError("INSERT INTO telemetry_1m ...", {}, orig)

    with pytest.raises(SystemExit) as exited:
        guarded(broken)
    assert exited.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "database error: NumericValueOutOfRange: value out of range: overflow" in lines[0]
    assert "WORKBENCH_LOG_LEVEL=DEBUG" in lines[0]


def test_a_startup_error_is_its_own_line(capsys: pytest.CaptureFixture[str]) -> None:
    def refused() -> None:
        raise StartupError("port 127.0.0.1:1 is in use; choose another with WORKBENCH_PORT")

    with pytest.raises(SystemExit) as exited:
        guarded(refused)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err == "workbench: port 127.0.0.1:1 is in use; choose another with WORKBENCH_PORT\n"
