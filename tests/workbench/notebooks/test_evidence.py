"""A notebook rule end to end: HTTP ingest -> rule engine -> warm notebook run -> alert row linked to its
executed notebook -> the run as JSON and HTML (API and the UI's alert evidence); the same rule on a cron;
and its backtest through ``POST /api/v1/rules/{id}/test``."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.workbench.api.fixtures import ApiUser, make_device, sign_in
from tests.workbench.notebooks.fixtures import write_notebook
from workbench.db.tables import notebook_runs
from workbench.notebooks import rule_type as notebook_rules
from workbench.notebooks.rule_delivery import deliver
from workbench.notebooks.rule_schedule import NotebookScheduler
from workbench.notebooks.runner import NotebookRunner
from workbench.notebooks.service import notebook_runner
from workbench.platform import EXTENSION, Platform
from workbench.rules.engine import RuleEngine
from workbench.rules.types import Rule, rule_type
from workbench.settings import Settings

BASELINE_MIN, WINDOW_MIN, SHIFT_S = 30, 10, 180


def wait_for(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def engine_on_app(app: Flask, notebook_runner: NotebookRunner) -> Iterator[tuple[Platform, RuleEngine]]:
    """The app's platform with a running rule engine; notebook rules run on the session's warm pool."""
    platform: Platform = app.extensions[EXTENSION]
    own = notebook_runner_of(platform)
    platform.services.notebooks = notebook_runner
    engine = RuleEngine(platform, reload_seconds=0.2, tick_seconds=3600).start()
    yield platform, engine
    kind = rule_type("notebook")
    assert isinstance(kind, notebook_rules.NotebookRuleType)
    kind.wait()
    engine.stop()
    platform.services.rules = None
    platform.services.notebooks = own


def notebook_runner_of(platform: Platform) -> NotebookRunner:
    """The app's own runner (restored after the test)."""
    return notebook_runner(platform)


def ewma_rule(**condition: Any) -> dict[str, Any]:
    """A notebook rule on the EWMA chart of ``flow``: 30 min baseline before a 10 min monitoring window."""
    return {
        "name": f"ewma-{uuid.uuid4().hex[:6]}",
        "type": "notebook",
        "condition": {
            "notebook": "rules/ewma.ipynb",
            "parameters": {"keys": ["flow"], "baseline": f"{BASELINE_MIN}m", "lam": 0.2},
            "window": f"{WINDOW_MIN}m",
            "every": "1m",
            **condition,
        },
        "action": {"type": "alert", "severity": "critical", "message": "{rule}: {key} at {value}"},
        "cooldown_seconds": 0,
    }


def readings(end: datetime) -> list[dict[str, Any]]:
    """1 Hz flow for baseline + window ending at ``end``: steady, then 8 sigma higher for the last 3 min."""
    count = (BASELINE_MIN + WINDOW_MIN) * 60
    values = 20 + np.random.default_rng(3).normal(0, 0.5, count)
    values[-SHIFT_S:] += 4
    first = end - timedelta(seconds=count)
    return [
        {"key": "flow", "value": float(v), "timestamp": (first + timedelta(seconds=i)).isoformat()}
        for i, v in enumerate(values)
    ]


def test_alert_links_to_its_executed_notebook_through_api_and_ui(
    app: Flask,
    client: FlaskClient,
    engine_on_app: tuple[Platform, RuleEngine],
    auth_headers: dict[str, dict[str, str]],
    api_users: dict[str, ApiUser],
) -> None:
    platform, engine = engine_on_app
    engineer, operator = auth_headers["engineer"], auth_headers["operator"]
    device = make_device(app, f"nb-evidence-{uuid.uuid4().hex[:6]}")
    end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    target = {"device_id": str(device.id)}
    on_data = client.post("/api/v1/rules", json={**ewma_rule(), **target}, headers=engineer)
    cron_rule = {**ewma_rule(schedule="* * * * *", on_data=False), **target}
    cron_rule["action"] = {"type": "alert", "severity": "warning"}  # no message: the notebook's is used
    cron_rule["condition"]["keys"] = cron_rule["condition"]["parameters"].pop("keys")  # passed on to it
    on_cron = client.post("/api/v1/rules", json=cron_rule, headers=engineer)
    assert on_data.status_code == 201 and on_cron.status_code == 201, (on_data.json, on_cron.json)
    live_id, cron_id = on_data.json["id"], on_cron.json["id"]
    wait_for(lambda: {live_id, cron_id} <= {rule.id for rule in engine.rules()})

    # Real ingest: the device posts its readings; the committed batch reaches the engine on the bus.
    sent = client.post("/api/v1/telemetry", json=readings(end), headers=device.headers)
    assert sent.status_code in (200, 201), sent.json

    def linked_alerts(rule_id: str) -> list[dict[str, Any]]:
        page = client.get(f"/api/v1/alerts?rule_id={rule_id}", headers=operator).json
        return [item for item in page["items"] if item["notebook_run_id"]]

    alert = wait_for(lambda: linked_alerts(live_id))[0]
    assert alert["severity"] == "critical" and alert["key"] == "flow" and alert["status"] == "active"
    assert alert["message"].startswith(f"{on_data.json['name']}: flow at ")  # the rule's template
    assert alert["metadata"]["notebook_message"].startswith("flow: EWMA")
    assert end - timedelta(seconds=SHIFT_S + 1) <= datetime.fromisoformat(alert["triggered_at"]) < end

    # alert -> notebook run -> HTML
    run = client.get(f"/api/v1/notebook-runs/{alert['notebook_run_id']}", headers=operator)
    assert run.status_code == 200, run.json
    assert run.json["rule_id"] == live_id and run.json["status"] == "ok"
    assert alert["id"] in run.json["alert_ids"] and run.json["parameters"]["device"] == str(device.id)
    page = client.get(run.json["html_url"], headers=operator)
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "EWMA control chart" in text and "flow: EWMA" in text and str(device.id) in text

    # The UI's alert evidence links to the same page, which a logged-in UI session can open.
    from workbench.ui.pages.alerts import evidence

    with app.test_request_context():
        parts = evidence(alert["id"])
    links = [part for part in parts if getattr(part, "id", None) == "alert-notebook-link"]
    assert links and links[0].href == run.json["html_url"]
    operator_user = api_users["operator"]
    sign_in(app, client, operator_user.id)
    assert "flow: EWMA" in client.get(links[0].href).get_data(as_text=True)  # no token: the UI session
    with client.session_transaction() as session:
        session.clear()

    # The cron-only rule ignored the data; its due time runs it over the window ending then.
    with platform.engine.connect() as conn:
        ran = conn.execute(select(notebook_runs.c.id).where(notebook_runs.c.rule_id == uuid.UUID(cron_id)))
        assert ran.first() is None
    scheduler = NotebookScheduler(platform)
    assert scheduler.tick(end - timedelta(seconds=30)) == []
    assert scheduler.tick(end + timedelta(seconds=5)) == [(cron_id, end, 1)]
    assert NotebookScheduler(platform).tick(end + timedelta(seconds=5)) == []  # first tick only records
    scheduled = wait_for(lambda: linked_alerts(cron_id))[0]
    assert scheduled["message"].startswith(f"{cron_rule['name']}: flow: EWMA")
    cron_run = client.get(f"/api/v1/notebook-runs/{scheduled['notebook_run_id']}", headers=operator).json
    assert cron_run["parameters"]["end"].startswith(end.isoformat()[:19])
    assert cron_run["parameters"]["keys"] == ["flow"]

    # Backtest through the API: would-be alerts, none raised.
    before = len(client.get(f"/api/v1/alerts?rule_id={live_id}", headers=operator).json["items"])
    window = {"start": (end - timedelta(minutes=WINDOW_MIN)).isoformat(), "end": end.isoformat()}
    tested = client.post(f"/api/v1/rules/{live_id}/test", json=window, headers=operator)
    assert tested.status_code == 200, tested.json
    assert tested.json["alerts"] and tested.json["alerts"][0]["key"] == "flow"
    assert end - timedelta(seconds=SHIFT_S + 1) <= datetime.fromisoformat(
        tested.json["alerts"][0]["triggered_at"]
    )
    after = len(client.get(f"/api/v1/alerts?rule_id={live_id}", headers=operator).json["items"])
    assert after == before

    # Every evaluation is kept: the rule's runs, newest first, the backtest's marked as a dry run.
    runs = client.get(f"/api/v1/notebook-runs?rule_id={live_id}", headers=operator).json
    assert runs["total"] == len(runs["items"]) >= 2
    newest, *older = runs["items"]
    assert newest["records"]["dry_run"] and newest["html_url"].endswith(f"{newest['id']}/html")
    # Each would-be alert names the dry run that found it, so its evidence opens too.
    assert {a["notebook_run_id"] for a in tested.json["alerts"]} == {newest["id"]}
    assert client.get(f"/api/v1/notebook-runs/{newest['id']}/html", headers=operator).status_code == 200
    assert alert["notebook_run_id"] in {run["id"] for run in older}
    assert client.get("/api/v1/notebook-runs?status=bogus", headers=operator).status_code == 422


def test_one_run_with_several_episodes_gives_each_its_alert(
    app: Flask,
    client: FlaskClient,
    engine_on_app: tuple[Platform, RuleEngine],
    auth_headers: dict[str, dict[str, str]],
    settings: Settings,
    notebook_runner: NotebookRunner,
    tmp_path: Path,
) -> None:
    """Two ended excursions and an ongoing one in one run: resolved, resolved, active; none absorbed."""
    platform, _ = engine_on_app
    device = make_device(app, f"nb-episodes-{uuid.uuid4().hex[:6]}")
    made = client.post(
        "/api/v1/rules", json={**ewma_rule(), "device_id": str(device.id)}, headers=auth_headers["engineer"]
    )
    rule = Rule.from_row(made.json)
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    stamps = [(t0 + timedelta(minutes=m)).isoformat() for m in range(6)]
    write_notebook(
        tmp_path,
        "episodes",
        "from workbench.notebooks import api\n"
        f"api.alert('warning', 'first', value=1.0, at='{stamps[0]}', end='{stamps[1]}', key='flow')\n"
        f"api.alert('warning', 'second', value=2.0, at='{stamps[2]}', end='{stamps[3]}', key='flow')\n"
        f"api.alert('warning', 'third', value=3.0, at='{stamps[4]}', end='{stamps[5]}', key='flow',"
        " ongoing=True)",
    )
    runner = NotebookRunner(settings, root=tmp_path, pool=notebook_runner.pool)
    result = runner.run("episodes.ipynb", rule_id=uuid.UUID(rule.id)).raise_for_status()
    events = notebook_rules.events_of(result, str(device.id), int(pd.Timestamp(stamps[5]).value) + 1000)
    assert deliver(platform, rule, pd.DataFrame(events))
    page = client.get(f"/api/v1/alerts?rule_id={rule.id}", headers=auth_headers["operator"]).json["items"]
    found = sorted(
        (a["value"], a["status"], a["notebook_run_id"], a["metadata"]["notebook_message"]) for a in page
    )
    run = str(result.run_id)
    assert found == [
        (1.0, "resolved", run, "first"),
        (2.0, "resolved", run, "second"),
        (3.0, "active", run, "third"),
    ]
