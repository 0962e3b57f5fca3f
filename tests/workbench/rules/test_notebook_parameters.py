"""Notebook rules: ``condition.parameters`` are data on create, update, ``/rules/{id}/test`` and live runs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.workbench.notebooks.fixtures import runner_platform
from tests.workbench.notebooks.payloads import code_name, code_value
from tests.workbench.rules.conftest import T0, Rig
from workbench.db.tables import notebook_runs, rules
from workbench.notebooks import rule_type as notebook_rules
from workbench.notebooks.parameters import ParameterError
from workbench.notebooks.runner import NotebookRunner
from workbench.platform import EXTENSION
from workbench.rules.types import EvalContext, Rule, rule_type

Headers = dict[str, dict[str, str]]


def _notebook_rule(device: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"ewma-{uuid.uuid4().hex[:6]}",
        "type": "notebook",
        "target": {"device_id": device},
        "condition": {"notebook": "rules/ewma.ipynb", "keys": ["flow"], "parameters": parameters},
        "action": {"type": "alert", "severity": "warning"},
    }


def _runs_of(app: Flask, rule_id: str) -> int:
    engine = app.extensions[EXTENSION].engine
    with engine.connect() as conn:
        query = select(func.count()).select_from(notebook_runs)
        return int(conn.execute(query.where(notebook_runs.c.rule_id == uuid.UUID(rule_id))).scalar_one())


def test_create_and_update_refuse_parameters_that_are_not_data(
    client: FlaskClient, auth_headers: Headers, rig: Rig, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    [device] = rig.devices(1)
    engineer = auth_headers["engineer"]
    for parameters, message in (
        ({code_name(marker): 1}, "is not an identifier; allowed: device, keys, start, end, window"),
        ({"lamda": 0.2}, "unknown parameter 'lamda'; allowed: device, keys"),
        ({"lam": "__import__('os')"}, "parameter 'lam' must be a number"),
    ):
        answer = client.post("/api/v1/rules", json=_notebook_rule(device, parameters), headers=engineer)
        assert answer.status_code == 422, answer.json
        [error] = answer.json["error"]["details"]["fields"]["condition.parameters"]
        assert message in error
    created = client.post("/api/v1/rules", json=_notebook_rule(device, {"lam": 0.2}), headers=engineer)
    assert created.status_code == 201, created.json
    rule_id = created.json["id"]
    condition = {**created.json["condition"], "parameters": {code_name(marker): 1}}
    changed = client.put(f"/api/v1/rules/{rule_id}", json={"condition": condition}, headers=engineer)
    assert changed.status_code == 422 and "condition.parameters" in changed.json["error"]["details"]["fields"]
    # A string that would break out of naive quoting is data: accepted, stored as sent.
    condition["parameters"] = {"side": code_value(marker)}
    changed = client.put(f"/api/v1/rules/{rule_id}", json={"condition": condition}, headers=engineer)
    assert changed.status_code == 200, changed.json
    assert changed.json["condition"]["parameters"]["side"] == code_value(marker)
    assert not marker.exists()


def test_an_operator_cannot_run_a_stored_rules_code_through_test(
    app: Flask, client: FlaskClient, auth_headers: Headers, rig: Rig, tmp_path: Path
) -> None:
    """A rule written around the API (or before the check): the backtest refuses it, runs nothing."""
    marker = tmp_path / "marker"
    [device] = rig.devices(1)
    rig.store(device, "flow", [(s, 1.0) for s in range(0, 600, 10)])
    bad = _notebook_rule(device, {code_name(marker): 1})
    rule_id = rig.rule("notebook", bad["condition"], device_id=uuid.UUID(device))
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    answer = client.post(f"/api/v1/rules/{rule_id}/test", json=window, headers=auth_headers["operator"])
    assert answer.status_code == 422, answer.json
    [error] = answer.json["error"]["details"]["fields"]["condition.parameters"]
    assert "is not an identifier; allowed: device, keys" in error
    assert not marker.exists() and _runs_of(app, rule_id) == 0


def test_live_and_scheduled_runs_of_a_stored_bad_rule_run_nothing(
    app: Flask,
    rig: Rig,
    notebook_runner: NotebookRunner,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The runner is the last gate: an evaluation of a stored bad rule is refused before any kernel."""
    marker = tmp_path / "marker"
    [device] = rig.devices(1)
    condition = _notebook_rule(device, {code_name(marker): 1})["condition"]
    rule_id = rig.rule("notebook", condition, device_id=uuid.UUID(device))
    rule = Rule(
        id=rule_id,
        name="bad",
        type="notebook",
        condition=condition,
        actions=[{"type": "alert"}],
        device_id=device,
    )
    kind = rule_type("notebook")
    assert isinstance(kind, notebook_rules.NotebookRuleType)
    platform = runner_platform(notebook_runner)
    start = int(pd.Timestamp(T0).value)
    with pytest.raises(ParameterError, match="not an identifier"):
        kind.backtest(rule, rig.platform.engine, start, start + 3600 * 10**9, EvalContext(platform=platform))
    assert kind.run_due(platform, rule, [device], pd.Timestamp(T0) + pd.Timedelta(hours=1)) == 1
    kind.wait(30)
    [refused] = [r for r in caplog.records if r.exc_info and rule_id in r.getMessage()]
    assert refused.exc_info and isinstance(refused.exc_info[1], ParameterError)
    assert not marker.exists() and _runs_of(app, rule_id) == 0


def test_the_rules_page_backtest_of_a_stored_bad_rule_says_why(app: Flask, rig: Rig, tmp_path: Path) -> None:
    """The same refusal on the Rules page's backtest button: a titled empty chart, nothing run."""
    from workbench.ui.pages.rules import _backtest_figure

    marker = tmp_path / "marker"
    [device] = rig.devices(1)
    condition = _notebook_rule(device, {code_name(marker): 1})["condition"]
    rule_id = rig.rule("notebook", condition, device_id=uuid.UUID(device))
    with app.app_context(), rig.platform.engine.connect() as conn:
        row = conn.execute(select(rules).where(rules.c.id == uuid.UUID(rule_id))).mappings().one()
        figure = _backtest_figure(dict(row))
    title = figure.layout.title.text.replace("<br>", " ")
    assert title.startswith("invalid rule: condition.parameters: rules/ewma.ipynb: parameter name")
    assert "is not an identifier; allowed: device, keys" in title
    assert not figure.data[0].x and not marker.exists() and _runs_of(app, rule_id) == 0
