"""``workbench lab``: JupyterLab on the repository, with kernels that reach the platform's database."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from dataclasses import replace

import pytest

from tests.conftest import free_port
from tests.workbench.notebooks.fixtures import ROOT
from workbench.notebooks.helpers import DATABASE_ENV
from workbench.notebooks.lab import LabUnavailable, lab_command, lab_environment, lab_installed, run_lab
from workbench.settings import Settings


def test_kernels_get_the_platform_database_and_data_directory(settings: Settings) -> None:
    env = lab_environment(replace(settings, dask_scheduler="tcp://dask:8786"))
    assert env[DATABASE_ENV] == settings.database_url
    assert env["WORKBENCH_DATA_DIR"] == str(settings.data_dir.resolve())
    assert env["WORKBENCH_DASK_SCHEDULER"] == "tcp://dask:8786"
    command = lab_command(ROOT, port=8899, open_browser=False, ip="0.0.0.0")
    assert f"--ServerApp.root_dir={ROOT}" in command and "--ServerApp.port=8899" in command
    assert "--no-browser" in command and "--ServerApp.ip=0.0.0.0" in command


@pytest.mark.slow
def test_lab_serves_jupyterlab_or_says_how_to_install_it(settings: Settings) -> None:
    if not lab_installed():
        with pytest.raises(LabUnavailable, match=r'pip install -e "\.\[lab\]"'):
            run_lab(settings, ROOT, open_browser=False)
        return
    port = free_port()
    process = subprocess.Popen(
        lab_command(ROOT, port, open_browser=False),
        env=lab_environment(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api", timeout=2) as response:
                    assert b"version" in response.read()
                    break
            except OSError:
                assert process.poll() is None, "JupyterLab exited"
                assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
                time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(20)
