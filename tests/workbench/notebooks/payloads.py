"""Attack payloads for the parameter tests: each writes a marker file if it ever runs as code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def code_name(marker: Path) -> str:
    """A parameter *name* that papermill writes into the injected cell as three lines of code."""
    return f"x = 1\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\ny"


def code_value(marker: Path) -> str:
    """A parameter *value* that would run if it were pasted between quotes without escaping."""
    return f"\"\"\"'\\\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n#"


def papermill_would_run(name: str, marker: Path) -> bool:
    """Whether papermill, given ``name`` unchecked, writes a cell that runs the payload: the injected
    cell's source is run in a fresh interpreter and the marker looked for (then removed)."""
    from nbformat.v4 import new_code_cell, new_notebook
    from papermill.parameterize import parameterize_notebook

    nb = new_notebook(cells=[new_code_cell("x = 0", metadata={"tags": ["parameters"]})])
    nb.metadata.papermill = {}
    nb = parameterize_notebook(nb, {name: 1}, kernel_name="python3", language="python")
    source = nb.cells[1].source
    subprocess.run([sys.executable, "-c", source], check=True, timeout=30)
    ran = marker.exists()
    marker.unlink(missing_ok=True)
    return ran
