"""``bench/ingest.py --platform`` end to end: `workbench up` as its own process, a small external load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from workbench.db.engine import libpq_url

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 2000


@pytest.mark.slow
@pytest.mark.mosquitto
@pytest.mark.timeout(900)
def test_platform_mode_commits_every_point_and_prints_every_figure(postgres_server_url: str) -> None:
    """Rules off and on, HTTP, COPY: every point committed and checked, every figure present and positive."""
    command = [sys.executable, "bench/ingest.py", "--platform", "--messages", str(MESSAGES), "--json"]
    command += ["--warmup", "200", "--rules", "both", "--http", "--http-clients", "2"]
    command += ["--database-url", postgres_server_url]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    by = {(r["measure"], r.get("rules", "")): r for r in records}
    points = MESSAGES * 10

    off, on = by[("mqtt_end_to_end", "off")], by[("mqtt_end_to_end", "on (120 rules)")]
    for mqtt in (off, on):
        assert (mqtt["points"], mqtt["rows_committed"], mqtt["lost"]) == (points, points, 0)
        assert mqtt["data_check"] == "ok"
        for figure in ("points_per_s", "publish_points_per_s", "seconds", "ratio_to_copy"):
            assert mqtt[figure] > 0, figure
        assert mqtt["lag_last_puback_to_last_row_s"] >= 0
        assert mqtt["rules_caught_up_s"] >= mqtt["seconds"]
        assert mqtt["workbench_cpu_seconds_until_rules_caught_up"] >= mqtt["cpu_seconds"]["workbench"]
        assert mqtt["cpu_seconds"]["workbench"] > 0
        assert mqtt["cpu_seconds"]["postgres_database"] > 0  # the test server runs on this machine
    assert off["rule_evaluations"] == 0
    assert on["rule_evaluations"] > 0  # the rules made through the API evaluated the load

    http = by[("http_batches", "off")]
    assert (http["points"], http["accepted"], http["rows_committed"]) == (points, points, points)
    assert http["data_check"] == "ok" and http["failures"] == []
    assert http["points_per_s"] > 0 and http["ratio_to_mqtt"] > 0

    copy = by[("binary_copy", "")]
    assert copy["rows"] == points and copy["data_check"] == "ok" and copy["rows_per_s"] > 0
    assert isinstance(by[("rules_cost", "")]["percent"], float)

    run = by[("run", "")]
    assert run["load_average_1min_start"] >= 0 and run["load_average_1min_end"] >= 0
    with pytest.raises(ProcessLookupError):  # the platform's process tree was stopped
        os.kill(run["workbench_pid"], 0)
    with psycopg.connect(libpq_url(postgres_server_url), autocommit=True) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (run["database"],)).fetchone()
    assert left is None  # the scratch database was dropped
