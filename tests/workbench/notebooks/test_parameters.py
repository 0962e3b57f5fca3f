"""Parameters are data: names the notebook declares, JSON values of their types, checked before any kernel."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workbench.notebooks.fixtures import ROOT, write_notebook
from tests.workbench.notebooks.payloads import code_name, code_value, papermill_would_run
from workbench.notebooks.execute import execute_cold, prepare
from workbench.notebooks.parameters import ParameterError, check, declared, json_value, plain, supplied
from workbench.notebooks.runner import NotebookRunner
from workbench.settings import Settings

EWMA = ROOT / "rules" / "ewma.ipynb"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("parameters")


@pytest.fixture(scope="module")
def runner(settings: Settings, scratch: Path, notebook_runner: NotebookRunner) -> Iterator[NotebookRunner]:
    """A runner on a scratch folder that borrows the session's warm pool."""
    borrowed = NotebookRunner(settings, root=scratch, pool=notebook_runner.pool)
    yield borrowed
    borrowed.close()


def test_papermill_alone_runs_a_parameter_name_as_code(tmp_path: Path) -> None:
    """The attack itself, one layer down: papermill writes the name unescaped, and it runs."""
    marker = tmp_path / "marker"
    assert papermill_would_run(code_name(marker), marker)


def test_declared_parameters_come_from_the_cells_source_never_run() -> None:
    kinds = {name: found.kind for name, found in declared(ROOT / "rules" / "hotelling_t2_q.ipynb").items()}
    # papermill's own inspection skips `smooth = 1  # ... (1 = none)`: the AST does not.
    assert kinds["smooth"] == "integer" and kinds["alpha"] == "number" and kinds["keys"] == "any"
    assert kinds["device"] == "string" and kinds["baseline_start"] == "any"
    western = declared(ROOT / "rules" / "western_electric.ipynb")
    assert western["rules"].kind == "array" and western["subgroup"].kind == "integer"


def test_declarations_survive_magics_annotations_and_expressions(tmp_path: Path) -> None:
    cell = (
        "%matplotlib inline\n"
        "limit: float = 3\n"
        "a = b = 'x'\n"
        "since = __import__('os').getcwd()  # not a literal: never evaluated\n"
        "if True:\n    hidden = 1\n"
        "flag = False"
    )
    path = write_notebook(tmp_path, "declares", parameters=cell)
    kinds = {name: found.kind for name, found in declared(path).items()}
    assert kinds == {"limit": "number", "a": "string", "b": "string", "since": "any", "flag": "boolean"}
    assert check(path, {"limit": 2, "since": {"any": "json"}, "flag": True})["flag"] is True
    with pytest.raises(ParameterError, match="unknown parameter 'hidden'"):
        check(path, {"hidden": 2})


def test_names_must_be_declared_identifiers(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with pytest.raises(ParameterError, match="is not an identifier; allowed: device, keys, start") as error:
        check(EWMA, {code_name(marker): 1})
    assert "lam, L, side" in str(error.value)
    with pytest.raises(ParameterError, match="unknown parameter 'lamda'; allowed: device"):
        check(EWMA, {"lamda": 0.2})
    for name in ("class", "x-y", "", "__import__('os')", "a.b"):
        with pytest.raises(ParameterError, match="not an identifier"):
            check(EWMA, {name: 1})
    with pytest.raises(ParameterError, match="'device' is set by the platform"):
        check(EWMA, {"device": "pump"}, reserved=("device",))
    with pytest.raises(ParameterError, match="parameters must be an object"):
        check(EWMA, [("lam", 1)])  # type: ignore[arg-type]
    assert not marker.exists()


def test_values_are_json_of_the_declared_type() -> None:
    good = {"lam": 1, "L": 2.5, "min_samples": 3.0, "side": "lower", "keys": ["a"], "start": None}
    assert check(EWMA, good) == {**good, "min_samples": 3}
    assert check(EWMA, {"keys": {"nested": [1, {"deep": None}]}})["keys"] == {"nested": [1, {"deep": None}]}
    refused = {
        "lam": ("0.1", "must be a number"),
        "L": (True, "must be a number"),
        "min_samples": (1.5, "must be an integer"),
        "side": (["both"], "must be a string"),
        "severity": (None, "must be a string"),
    }
    for name, (value, message) in refused.items():
        with pytest.raises(ParameterError, match=f"'{name}' {message}"):
            check(EWMA, {name: value})
    for value, message in (
        (float("nan"), "not a finite number"),
        (float("inf"), "not a finite number"),
        ({1: "a"}, "object keys must be strings"),
        (b"bytes", "bytes is not a JSON value"),
        ({"a"}, "set is not a JSON value"),
    ):
        with pytest.raises(ParameterError, match=message):
            check(EWMA, {"keys": value})
    deep: list[object] = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(ParameterError, match="nested deeper"):
        json_value(deep)


def test_the_code_that_writes_the_injected_cell_refuses_code_names(tmp_path: Path) -> None:
    """Below the runner too: whoever calls ``prepare`` or ``execute_cold`` cannot inject a name."""
    marker = tmp_path / "marker"
    path = write_notebook(tmp_path, "low", "print(x)")
    with pytest.raises(ParameterError, match="is not an identifier"):
        prepare(path, {code_name(marker): 1})
    with pytest.raises(ParameterError, match="is not a JSON value"):
        prepare(path, {"x": object()})
    with pytest.raises(ParameterError, match="is not an identifier"):
        execute_cold(
            str(path), str(tmp_path / "out.ipynb"), {code_name(marker): 1}, None, str(tmp_path), 30, "low"
        )
    assert plain({"x": [1, {"a": None}]}) == {"x": [1, {"a": None}]}
    assert not marker.exists() and not (tmp_path / "out.ipynb").exists()


def test_platform_values_only_for_declared_names() -> None:
    assert supplied(EWMA, {"device": "pump", "report_dir": "/tmp", "keys": ["a"]}) == {
        "device": "pump",
        "keys": ["a"],
    }


def test_the_runner_refuses_a_code_name_before_any_kernel(runner: NotebookRunner, scratch: Path) -> None:
    """Every path ends in ``NotebookRunner.run``: warm, cold and Dask runs are all refused there."""
    marker = scratch / "runner-marker"
    write_notebook(scratch, "target", "print(x)")
    for mode in ("warm", "cold", "dask"):
        with pytest.raises(ParameterError, match="not an identifier; allowed: x"):
            runner.run("target.ipynb", {code_name(marker): 1}, mode=mode)
        with pytest.raises(ParameterError, match="unknown parameter 'y'; allowed: x"):
            runner.run("target.ipynb", {"y": 1}, mode=mode)
    assert not marker.exists()


def test_string_values_reach_the_notebook_as_data(runner: NotebookRunner, scratch: Path) -> None:
    """A value crafted to break out of quotes arrives unchanged, warm and cold, and runs nothing."""
    marker = scratch / "value-marker"
    write_notebook(
        scratch,
        "echo",
        "from workbench.notebooks import api\napi.record('text', text)\napi.record('data', data)",
        parameters='text = ""\ndata = None',
    )
    text = code_value(marker)
    data = {text: [text, "\\", '"', "'''", "\u00e9\U0001f600", 1.5, None, True]}
    for mode in ("warm", "cold"):
        result = runner.run("echo.ipynb", {"text": text, "data": data}, mode=mode).raise_for_status()
        assert result.records == {"text": text, "data": data}, mode
    assert not marker.exists()
