"""Script actions run only files of the scripts folder, and a notebook's ``params`` are data."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.workbench.notebooks.fixtures import write_notebook
from tests.workbench.notebooks.payloads import code_name, code_value
from tests.workbench.rules.conftest import Rig
from workbench.notebooks.parameters import ParameterError
from workbench.platform import Platform
from workbench.rules.actions.base import ActionContext, action
from workbench.rules.actions.script import scripts_dir
from workbench.rules.types import Rule
from workbench.rules.validation import validate_actions
from workbench.settings import Settings

REPO = Path(__file__).resolve().parents[3]
WRITE = "import pathlib, sys\npathlib.Path(sys.argv[0]).with_suffix('.ran').write_text('ran')\nprint('ran')\n"
RULE = Rule(id=str(uuid.uuid4()), name="r", type="threshold", condition={}, actions=[])
ALERT = {"id": str(uuid.uuid4()), "device_id": "d", "key": "temp", "value": 75.5, "message": "hot"}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scripts folder beside an ``outside`` one; validation outside a request reads it from the env."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (tmp_path / "outside").mkdir()
    monkeypatch.setenv("WORKBENCH_SCRIPTS_DIR", str(scripts))
    return scripts


@pytest.fixture
def platform(rules_platform: Platform, folder: Path) -> Platform:
    """The rules platform with that scripts folder."""
    return replace(rules_platform, settings=replace(rules_platform.settings, scripts_dir=folder))


def test_the_default_scripts_folder_is_the_repositorys(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files the attack reached before (anything under the repository) are outside it."""
    monkeypatch.delenv("WORKBENCH_SCRIPTS_DIR", raising=False)
    assert scripts_dir(replace(settings, scripts_dir=None)) == REPO / "scripts"
    assert validate_actions({"type": "script", "path": "log_alert.py"}) == {}
    pip = Path(str(importlib.util.find_spec("pip").origin)).parent / "__main__.py"  # type: ignore[union-attr]
    for path in (
        os.path.relpath(pip, REPO / "scripts"),
        "../tests/conftest.py",
        "../tests/workbench/rules/scripts/record_action.py",
        "../../main/app.py",
        "../app.py",
    ):
        errors = validate_actions({"type": "script", "path": path})
        assert "inside the scripts folder" in errors["action.path"], path


def test_only_files_inside_the_scripts_folder_run(platform: Platform, folder: Path) -> None:
    outside = folder.parent / "outside" / "evil.py"
    outside.write_text(WRITE)
    (folder / "linked.py").symlink_to(outside)
    (folder / "good.py").write_text(WRITE)
    for path in (
        "../outside/evil.py",
        str(outside),
        "linked.py",  # a symlink out of the folder
        "sub/../../outside/evil.py",
        "../../../main/app.py",
        f"../{Path('..') / '..'}/tests/conftest.py",
        str(REPO / "tests" / "conftest.py"),
        str(Path(json.__file__)),  # a .py of the installed Python
        str(Path(sys.prefix) / "lib"),
        "good.txt",
    ):
        errors = validate_actions({"type": "script", "path": path})
        assert "inside the scripts folder" in errors.get("action.path", ""), path
        with pytest.raises(ValueError, match="inside the scripts folder"):
            action("script").notify(ActionContext(platform, RULE, ALERT), {"path": path})
    assert not outside.with_suffix(".ran").exists()
    assert validate_actions({"type": "script", "path": "good.py"}) == {}
    detail = action("script").notify(ActionContext(platform, RULE, ALERT), {"path": "good.py"})
    assert detail and detail["path"] == "good.py" and (folder / "good.ran").exists()


def test_the_rules_api_refuses_a_script_outside_the_folder(
    app: Flask, client: FlaskClient, auth_headers: dict[str, dict[str, str]], rig: Rig, folder: Path
) -> None:
    [device] = rig.devices(1)
    for path in ("../outside/evil.py", "../../../main/app.py", str(REPO / "tests" / "conftest.py")):
        body = {
            "name": "runs a file",
            "type": "threshold",
            "target": {"device_id": device},
            "condition": {"key": "temp", "operator": ">", "value": 1},
            "action": {"type": "script", "path": path},
        }
        answer = client.post("/api/v1/rules", json=body, headers=auth_headers["engineer"])
        assert answer.status_code == 422, answer.json
        [error] = answer.json["error"]["details"]["fields"]["action.path"]
        assert "inside the scripts folder" in error


@pytest.mark.slow
def test_notebook_script_params_are_data(platform: Platform, folder: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    write_notebook(
        folder,
        "notify",
        "import json, pathlib\npathlib.Path(out).write_text(json.dumps([alert, rule, note]))",
        parameters='alert = None\nrule = None\nnote = ""\nout = ""',
    )
    script = action("script")
    for params, field_error in (
        ({code_name(marker): 1}, "is not an identifier; allowed: note, out"),
        ({"alert": {"id": "forged"}}, "'alert' is set by the platform"),
        ({"note": ["x"]}, "parameter 'note' must be a string"),
        ({"colour": "red"}, "unknown parameter 'colour'; allowed: note, out"),
    ):
        config = {"type": "script", "path": "notify.ipynb", "params": params}
        assert field_error in validate_actions(config).get("action.params", ""), params
        with pytest.raises(ParameterError, match=field_error.split(";")[0].replace("(", r"\(")):
            script.notify(ActionContext(platform, RULE, ALERT), {"path": "notify.ipynb", "params": params})
    assert not marker.exists()
    out = tmp_path / "out.json"
    params = {"note": code_value(marker), "out": str(out)}
    detail = script.notify(ActionContext(platform, RULE, ALERT), {"path": "notify.ipynb", "params": params})
    assert detail and Path(detail["output"]).is_file()
    alert, rule, note = json.loads(out.read_text())
    assert alert == ALERT and rule["id"] == RULE.id and note == code_value(marker)
    assert not marker.exists()
