"""`pip install .` (not editable): the built wheel alone runs the lab from any directory.

The scenarios and the compose file must ship inside the package; a wheel that found them through the
source tree (`parents[2]`) would pass every other test, run from the checkout, and fail for a user.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ..labenv import ROOT, LabEnv

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (path,) = out.glob("chaoslab-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    """A fresh venv holding the wheel; its dependencies come from this venv's site-packages by a .pth line.

    A path line in a .pth file only extends sys.path: the editable install's finder hook in this venv is
    not run there, so `import lab` can only find the wheel's copy.
    """
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    Path(purelib, "deps-from-test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return python


def test_the_wheel_carries_the_scenarios_and_the_compose_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "lab/scenarios/network_partition.py" in names
    assert "lab/stack/docker-compose.yml" in names and "lab/stack/toxiproxy.json" in names
    assert not any(name.startswith(("tests/", "scenarios/")) for name in names)


def test_the_installed_wheel_runs_a_scenario_from_another_directory(installed: Path, tmp_path: Path) -> None:
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
    try:
        up = lab("up", "--backend", "local")
        assert up.returncode == 0, up.stdout + up.stderr
        run = lab("run", "network_partition", timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "PASS" in run.stdout
    finally:
        lab("down", "--purge")
    assert os.listdir(elsewhere) == [], "the lab wrote into the working directory"
