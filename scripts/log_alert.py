"""Example script action: append the alert it got (JSON on stdin) to ``DATA_DIR/actions/alerts.jsonl``.

Script actions run only files of this folder (``WORKBENCH_SCRIPTS_DIR`` moves it): a rule names the script
(``{"type": "script", "path": "log_alert.py"}``), the code is what was committed here.
"""

import json
import os
import sys
from pathlib import Path

payload = json.loads(sys.stdin.read())
folder = Path(os.environ.get("WORKBENCH_DATA_DIR", "var")) / "actions"
folder.mkdir(parents=True, exist_ok=True)
with open(folder / "alerts.jsonl", "a") as handle:
    handle.write(json.dumps(payload) + "\n")
print("logged", (payload.get("alert") or {}).get("id") or payload.get("due_at"))
