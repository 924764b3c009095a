"""`pip install .` (not editable): the built wheel alone runs the lab from any directory.

The scenarios and the compose file must ship inside the package; a wheel that found them through the
source tree (`parents[2]`) would pass every other test, run from the checkout, and fail for a user.
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from ..labenv import ROOT, LabEnv

pytestmark = pytest.mark.e2e


def test_the_wheel_carries_the_scenarios_and_the_compose_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lab/scenarios/network_partition.py" in names
    assert "lab/stack/docker-compose.yml" in names and "lab/stack/toxiproxy.json" in names
    assert not any(name.startswith(("tests/", "scenarios/")) for name in names)


def test_the_installed_wheel_imports_itself_and_lists_its_scenarios_from_another_directory(
        installed: Path, tmp_path: Path) -> None:
    env = LabEnv(tmp_path / "state")
    run_env = {k: v for k, v in env.env.items() if k != "PYTHONPATH"}
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def lab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(installed), "-m", "lab", *args], cwd=elsewhere, env=run_env,
                              capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([str(installed), "-c", "import lab; print(lab.__file__)"], cwd=elsewhere, env=run_env,
                           capture_output=True, text=True, timeout=60)
    assert where.returncode == 0 and str(ROOT) not in where.stdout, where.stdout + where.stderr
    listed = lab("list")
    assert listed.returncode == 0 and "network_partition" in listed.stdout, listed.stdout + listed.stderr
    assert os.listdir(elsewhere) == [], "the lab wrote into the working directory"
