"""``script``: run a Python script or a notebook of the scripts folder in a subprocess, with a timeout.

The script receives the action payload (rule, alert or due time, and ``params``) as JSON on stdin and in
``WORKBENCH_ACTION``; a notebook is run by papermill with ``params`` (names its parameters cell declares,
JSON values of their types: :mod:`workbench.notebooks.parameters`) plus ``alert`` and ``rule`` when it
declares them, and its executed copy is kept under ``DATA_DIR/actions/``. Only files inside the scripts
folder run (``WORKBENCH_SCRIPTS_DIR``, default ``scripts/`` of the repository; symlinks resolved, ``..``
refused): code that runs on the server is code someone committed there, never a rule's choice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

from workbench.notebooks.parameters import ParameterError, check, supplied
from workbench.rules.actions.base import Action, ActionContext, register_action
from workbench.settings import Settings

# Notebook parameters the action sets itself (when the notebook declares them).
RESERVED = ("alert", "rule")
SUFFIXES = (".py", ".ipynb")


def scripts_dir(settings: Settings | None = None) -> Path:
    """The folder script actions run files from: ``WORKBENCH_SCRIPTS_DIR``, else ``scripts/`` of the
    repository (symlinks resolved). Without ``settings``: the current app's, else the environment's."""
    if settings is None:
        settings = _settings()
    folder = settings.scripts_dir if settings.scripts_dir is not None else repository() / "scripts"
    return Path(folder).resolve()


def repository() -> Path:
    """The repository holding ``rules/``, ``reports/`` and ``scripts/`` (as the notebook runner finds it)."""
    from workbench.notebooks.runner import default_root

    return default_root().resolve()


def _settings() -> Settings:
    from flask import has_app_context

    if has_app_context():
        from workbench.platform import current_platform

        return current_platform().settings
    return Settings.from_env()


def resolve(path: str, folder: Path | None = None) -> Path:
    """The script's absolute path inside the scripts folder (ValueError naming the folder otherwise)."""
    folder = folder or scripts_dir()
    parts = PurePosixPath(path.replace("\\", "/")).parts
    refusal = f"must be a .py or .ipynb file inside the scripts folder {folder}"
    if not parts or parts[0] == "/" or ".." in parts or "\x00" in path:
        raise ValueError(refusal + " (a relative path without '..')")
    candidate = (folder / path).resolve()
    if not candidate.is_relative_to(folder) or candidate.suffix not in SUFFIXES:
        raise ValueError(refusal)
    return candidate


class ScriptAction(Action):
    """Run ``path`` (relative to the scripts folder) with ``params`` and a timeout."""

    name = "script"
    default_retries = 0

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """Path, parameters and timeout."""
        return {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": ".py or .ipynb, relative to the scripts folder"},
                "params": {
                    "type": "object",
                    "default": {},
                    "description": "JSON; for a notebook, names its parameters cell declares",
                },
                "timeout": {"type": "number", "minimum": 1, "default": 300},
            },
            "required": ["path"],
        }

    def validate(self, config: dict[str, Any], field: str = "action") -> dict[str, str]:
        """Schema checks, an existing file inside the scripts folder, and a notebook's parameters."""
        errors = super().validate(config, field)
        if isinstance(config.get("path"), str):
            try:
                found = resolve(config["path"])
            except ValueError as error:
                errors[f"{field}.path"] = str(error)
                return errors
            if not found.is_file():
                errors[f"{field}.path"] = f"no such file in the scripts folder {found.parent}"
            elif found.suffix == ".ipynb" and isinstance(config.get("params", {}), dict):
                try:
                    check(found, config.get("params", {}), reserved=RESERVED, label=config["path"])
                except ParameterError as error:
                    errors[f"{field}.params"] = str(error)
        return errors

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Run the script; a non-zero exit or a timeout raises with the end of its stderr."""
        folder = scripts_dir(context.platform.settings)
        path = resolve(config["path"], folder)
        params = dict(config.get("params") or {})
        payload = {**context.payload(), "params": params}
        document = json.dumps(payload, default=str)
        env = {
            **os.environ,
            "WORKBENCH_ACTION": document,
            "WORKBENCH_DATA_DIR": str(Path(context.platform.settings.data_dir).resolve()),
        }
        if context.platform.settings.database_url:
            env["WORKBENCH_DATABASE_URL"] = context.platform.settings.database_url
        timeout = float(config.get("timeout", 300))
        detail: dict[str, Any] = {"path": str(path.relative_to(folder))}
        if path.suffix == ".ipynb":
            out = context.platform.settings.data_dir / "actions" / f"{path.stem}-{uuid.uuid4().hex[:8]}.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            # Checked again here: a rule stored before a notebook changed, or written around the API.
            given = check(path, params, reserved=RESERVED, label=detail["path"])
            platform = json.loads(json.dumps({name: payload[name] for name in RESERVED}, default=str))
            parameters = {**supplied(path, platform), **given}
            command = [
                sys.executable,
                "-m",
                "papermill",
                str(path),
                str(out),
                "-y",
                json.dumps(parameters, default=str),
            ]
            detail["output"] = str(out)
        else:
            command = [sys.executable, str(path)]
        try:
            done = subprocess.run(
                command,
                input=document,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=repository(),
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{detail['path']} ran longer than {timeout:g} s and was killed") from None
        if done.returncode != 0:
            raise RuntimeError(f"{detail['path']} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        detail["stdout"] = done.stdout[-2000:]
        return detail


register_action(ScriptAction)
