"""Refresh the README's UI screenshots: run the browser tests that take them, copy them to docs/ui/.

    make screenshots        (or: .venv/bin/python -m tests.workbench.ui.screenshots)

The tests save full-page screenshots into test-artefacts/ as they drive the pages (``shot``); the ones the
README shows are copied from there, so the pictures are always of the UI the tests just checked.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import ROOT
from tests.workbench.ui.conftest import ARTEFACTS

DOCS = ROOT / "docs" / "ui"
# screenshot name: the test file taking it
SHOTS = {
    "overview-alarms": "test_alarms.py",
    "device": "test_pages.py",
    "dashboard-range": "test_dashboard_range.py",
    "dashboard-builder": "test_pages.py",
    "alerts": "test_pages.py",
    "alert-evidence-America-Chicago": "test_time.py",
    "alerts-dark": "test_a11y.py",
    "rules": "test_pages.py",
    "reports": "test_pages.py",
    "alerts-phone": "test_a11y.py",
    "device-phone": "test_a11y.py",
    "admin-users-last-admin": "test_admin_pages.py",
    "admin-quarantine": "test_admin_pages.py",
    "admin-service-tokens": "test_admin_pages.py",
    "devices": "test_devices_admin.py",
}


def main() -> int:
    """Run the tests taking the screenshots, then copy them; the exit status is pytest's."""
    tests = sorted({f"tests/workbench/ui/{test}" for test in SHOTS.values()})
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT)
    if done.returncode:
        return done.returncode
    DOCS.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        shutil.copyfile(ARTEFACTS / f"{name}.png", DOCS / f"{name}.png")
        print(f"docs/ui/{name}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
