"""Every analyst notebook in ``notebooks/`` runs against real data in the session database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workbench.notebooks.fixtures import ROOT, SkabPump
from workbench.notebooks.runner import NotebookRunner

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_is_a_getting_started_notebook() -> None:
    assert ROOT / "notebooks" / "getting_started.ipynb" in NOTEBOOKS


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_on_a_real_recording(
    notebook: Path, notebook_runner: NotebookRunner, skab_pump: SkabPump
) -> None:
    # As-is but for the device (the session database holds other tests' devices too): every other
    # parameter keeps its default, so the notebook picks its own range and rule settings.
    result = notebook_runner.run(notebook.relative_to(ROOT), {"device": skab_pump.name})
    assert result.ok, result.error
    text = Path(result.output_path or "").read_text()
    assert "image/png" in text  # the plots were drawn
    assert skab_pump.name in text and "Volume_Flow_RateRMS" in text
