"""``script``: run a Python script or a notebook from the repository in a subprocess, with a timeout.

The script receives the action payload (rule, alert or due time, and ``params``) as JSON on stdin and in
``WORKBENCH_ACTION``; a notebook is run by papermill with ``alert``, ``rule`` and each of ``params`` as
parameters, and its executed copy is kept under ``DATA_DIR/actions/``. Paths outside the repository are
refused: rules cannot run arbitrary files.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from workbench.rules.actions.base import Action, ActionContext, register_action

ROOT = Path(__file__).resolve().parents[3]


def resolve(path: str) -> Path:
    """The script's absolute path inside the repository (ValueError otherwise)."""
    candidate = (ROOT / path).resolve()
    if ROOT not in candidate.parents or candidate.suffix not in (".py", ".ipynb"):
        raise ValueError("must be a .py or .ipynb file inside the repository")
    return candidate


class ScriptAction(Action):
    """Run ``path`` (relative to the repository) with ``params`` and a timeout."""

    name = "script"
    default_retries = 0

    @classmethod
    def configuration_schema(cls) -> dict[str, Any]:
        """Path, parameters and timeout."""
        return {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "repository-relative .py or .ipynb"},
                "params": {"type": "object", "default": {}},
                "timeout": {"type": "number", "minimum": 1, "default": 300},
            },
            "required": ["path"],
        }

    def validate(self, config: dict[str, Any], field: str = "action") -> dict[str, str]:
        """Schema checks plus an existing file inside the repository."""
        errors = super().validate(config, field)
        if isinstance(config.get("path"), str):
            try:
                found = resolve(config["path"])
            except ValueError as error:
                errors[f"{field}.path"] = str(error)
            else:
                if not found.is_file():
                    errors[f"{field}.path"] = "no such file in the repository"
        return errors

    def notify(self, context: ActionContext, config: dict[str, Any]) -> dict[str, Any] | None:
        """Run the script; a non-zero exit or a timeout raises with the end of its stderr."""
        path = resolve(config["path"])
        params = dict(config.get("params") or {})
        payload = {**context.payload(), "params": params}
        document = json.dumps(payload, default=str)
        env = {**os.environ, "WORKBENCH_ACTION": document}
        if context.platform.settings.database_url:
            env["WORKBENCH_DATABASE_URL"] = context.platform.settings.database_url
        timeout = float(config.get("timeout", 300))
        detail: dict[str, Any] = {"path": str(path.relative_to(ROOT))}
        if path.suffix == ".ipynb":
            out = context.platform.settings.data_dir / "actions" / f"{path.stem}-{uuid.uuid4().hex[:8]}.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            parameters = {"alert": payload["alert"], "rule": payload["rule"], **params}
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
                command, input=document, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{detail['path']} ran longer than {timeout:g} s and was killed") from None
        if done.returncode != 0:
            raise RuntimeError(f"{detail['path']} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        detail["stdout"] = done.stdout[-2000:]
        return detail


register_action(ScriptAction)
