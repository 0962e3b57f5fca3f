"""The ``notebook`` rule type: validated conditions, backtests through the rule engine, live evaluation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select

from tests.workbench.notebooks.fixtures import FLOW, SkabPump, runner_platform
from workbench.db.engine import make_engine
from workbench.db.tables import notebook_runs, rules
from workbench.live.bus import EventBus
from workbench.notebooks import rule_type as notebook_rules
from workbench.notebooks.runner import NotebookRunner
from workbench.notebooks.service import close_notebooks, init_notebooks, notebook_runner
from workbench.platform import Platform
from workbench.rules.backtest import backtest
from workbench.rules.types import EvalContext, Points, Rule, RuleState, rule_type
from workbench.settings import Settings


@pytest.fixture(scope="module")
def kind(notebook_runner: NotebookRunner) -> Iterator[notebook_rules.NotebookRuleType]:
    registered = rule_type("notebook")
    assert isinstance(registered, notebook_rules.NotebookRuleType)
    yield registered
    registered.wait()


def make_rule(runner: NotebookRunner, pump: SkabPump) -> Rule:
    condition = {
        "notebook": "rules/cusum.ipynb",
        "parameters": {"keys": [FLOW], "side": "lower", **pump.backtest_parameters()},
        "window": "20m",
        "every": "1m",
    }
    action = {"type": "alert", "severity": "critical"}
    with runner.engine.begin() as conn:
        rule_id = conn.execute(
            insert(rules)
            .values(
                name=f"nb-{uuid.uuid4().hex[:6]}",
                type="notebook",
                condition=condition,
                action=action,
                device_id=pump.id,
            )
            .returning(rules.c.id)
        ).scalar_one()
    return Rule(
        id=str(rule_id),
        name="cusum",
        type="notebook",
        condition=condition,
        actions=[action],
        device_id=str(pump.id),
        cooldown_seconds=0,
    )


def test_conditions_are_validated_naming_the_field(kind: notebook_rules.NotebookRuleType) -> None:
    assert kind.validate({"notebook": "rules/ewma.ipynb", "keys": ["flow"]}) == {}
    errors = kind.validate({"notebook": "../etc/x.ipynb", "window": "soon", "parameters": []})
    assert set(errors) == {"condition.notebook", "condition.window", "condition.parameters", "condition.keys"}
    assert kind.keys({"notebook": "rules/ewma.ipynb", "parameters": {"keys": ["a", "b"]}}) == {"a", "b"}


def test_backtest_returns_would_be_alerts(
    kind: object, notebook_runner: NotebookRunner, skab_pump: SkabPump
) -> None:
    rule = make_rule(notebook_runner, skab_pump)
    start, end = skab_pump.start.to_pydatetime(), skab_pump.end.to_pydatetime()
    with pytest.raises(RuntimeError, match="init_notebooks"):  # no platform, no runner: said plainly
        backtest(notebook_runner.engine, rule, start, end)
    found = backtest(notebook_runner.engine, rule, start, end, runner_platform(notebook_runner))
    assert found["alerts"], found
    first = found["alerts"][0]
    assert first["device_id"] == str(skab_pump.id) and first["severity"] == "critical"
    labelled = skab_pump.anomaly[skab_pump.anomaly]
    assert labelled.index[0] <= pd.Timestamp(first["triggered_at"]) <= labelled.index[-1]


def test_live_evaluation_runs_off_the_batch_path(
    kind: notebook_rules.NotebookRuleType, notebook_runner: NotebookRunner, skab_pump: SkabPump
) -> None:
    rule = make_rule(notebook_runner, skab_pump)
    inside = skab_pump.anomaly[skab_pump.anomaly].index[300]  # well into the valve fault
    ts = np.array([inside.value], dtype=np.int64)
    device = np.array([str(skab_pump.id)], dtype=object)
    points = Points(np.array([0]), device, np.array([FLOW], dtype=object), ts, np.array([1.0]))
    state = RuleState(context=EvalContext(platform=runner_platform(notebook_runner)))
    first = kind.evaluate(rule, points, state)
    assert first.empty and state.devices[str(skab_pump.id)]["evaluated_ns"] == inside.value
    assert kind.evaluate(rule, points, state).empty  # throttled: one evaluation per `every`
    kind.wait()
    events = kind.evaluate(rule, points.take(np.array([], dtype=int)), state)  # next batch collects
    fires = events[events["kind"] == "fire"]
    assert len(fires) >= 1 and fires["notebook_run_id"].notna().all()
    with notebook_runner.engine.connect() as conn:
        run = conn.execute(
            select(notebook_runs).where(notebook_runs.c.id == uuid.UUID(fires["notebook_run_id"].iloc[0]))
        ).one()
    assert (
        str(run.rule_id) == rule.id and run.status == "ok" and run.parameters["device"] == str(skab_pump.id)
    )


def test_platform_wiring_shares_one_runner(settings: Settings) -> None:
    platform = Platform(settings=settings, engine=make_engine(settings.database_url or "", 1), bus=EventBus())
    runner = init_notebooks(platform)
    try:
        assert notebook_runner(platform) is runner and notebook_rules.runner_of(platform) is runner
        assert isinstance(rule_type("notebook"), notebook_rules.NotebookRuleType)
    finally:
        close_notebooks(platform)
        platform.engine.dispose()
    assert platform.services.notebooks is None
    with pytest.raises(RuntimeError, match="init_notebooks"):
        notebook_rules.runner_of(platform)
