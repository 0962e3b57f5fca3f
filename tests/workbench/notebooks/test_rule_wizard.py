"""The rule wizard notebook fits the library rules on a quiet period, backtests them, writes the best."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
from sqlalchemy import select

from tests.rules.test_multivariate import BASELINE, FAULT_AT, MONITORED, START, series, write_device
from workbench.db.engine import make_engine
from workbench.db.tables import rules
from workbench.notebooks.runner import NotebookRunner


@pytest.mark.slow  # runs every candidate rule twice in a nested runner (about 30 s)
def test_wizard_writes_the_chosen_rule_disabled(notebook_runner: NotebookRunner, database_url: str) -> None:
    device = write_device(database_url, series(1, fault=True))
    fault = START + pd.Timedelta(seconds=BASELINE + FAULT_AT)
    parameters = {
        "device": device,
        "baseline_end": (START + pd.Timedelta(seconds=BASELINE)).isoformat(),
        "rules": ["pca_t2_q", "knn_residual"],
        "faults": [[fault.isoformat(), (START + pd.Timedelta(seconds=BASELINE + MONITORED)).isoformat()]],
    }
    result = notebook_runner.run("notebooks/rule_wizard.ipynb", parameters)
    assert result.ok, result.error
    wizard = result.records["wizard"]
    assert wizard["chosen"] in ("pca_t2_q", "knn_residual")
    scored = {row["rule"]: row for row in wizard["table"]}
    assert scored[wizard["chosen"]]["f1"] > 0.8 and scored[wizard["chosen"]]["quiet_far"] <= 0.05
    engine = make_engine(database_url, pool_size=1)
    with engine.connect() as conn:
        row = conn.execute(select(rules).where(rules.c.id == uuid.UUID(wizard["rule_id"]))).mappings().one()
    engine.dispose()
    assert row["type"] == "notebook" and row["enabled"] is False
    assert row["condition"]["notebook"] == f"rules/{wizard['chosen']}.ipynb"
    assert row["condition"]["parameters"]["baseline_end"].startswith(parameters["baseline_end"][:19])
