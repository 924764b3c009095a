"""Attacks on the local stack, kept as regression tests (issue 10, SECURITY.md).

* Postgres trusted every local user on 127.0.0.1: any password (or none) got a
  superuser, and ``COPY ... FROM PROGRAM`` ran commands. Now SCRAM on every
  line of pg_hba.conf, and a trust-era data directory is migrated on ``up``.
* The proxy and Tansu ran as root. Now every component runs as the lab's user.
* After ``kill -9`` of the postmaster, ``up`` stumbled over the stale
  postmaster.pid and waited out its whole timeout.

Each test runs against a stack of its own (module scope): some of them kill or
reconfigure it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from lab.stack import procs

from ..labenv import LabEnv

pytestmark = [pytest.mark.integration, pytest.mark.security]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    env = LabEnv(tmp_path_factory.mktemp("security-lab") / "state")
    env.run("up")
    yield env
    env.run("down", "--purge", check=False)


def _connect(dsn: str | None = None, **kwargs) -> asyncpg.Connection:
    return asyncio.run(_query(dsn, "SELECT current_user", **kwargs))


async def _query(dsn: str | None, sql: str, **kwargs):
    conn = await asyncpg.connect(dsn, timeout=5, **kwargs)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _recorded_pids(env: LabEnv) -> dict[str, int]:
    state = json.loads((env.state_dir / "state.json").read_text())
    return {name: c["process"]["pid"] for name, c in state["components"].items()}


def _uids(pid: int) -> list[int]:
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("Uid:"))
    return [int(x) for x in line.split()[1:]]


@pytest.mark.parametrize("port_name", ["pg", "pg_proxy"])
@pytest.mark.parametrize("password", [None, "", "lab", "wrong"])
def test_postgres_refuses_a_local_user_without_the_password(lab, port_name, password):
    """What any local user could do before: connect as superuser lab with any password or none."""
    kwargs = {"host": "127.0.0.1", "port": lab.ports[port_name], "user": "lab", "database": "lab"}
    if password is not None:
        kwargs["password"] = password
    # asyncpg reads PGPASSWORD and ~/.pgpass; make sure neither supplies the real one
    with pytest.raises((asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError,
                        asyncpg.InterfaceError)):
        asyncio.run(_query(None, "COPY (SELECT 1) TO PROGRAM 'true'", passfile="/nonexistent", **kwargs))


def test_the_lab_password_connects_and_the_server_runs_programs_as_the_lab_user_only(lab):
    assert _connect(lab.pg_dsn) == "lab"
    uid = asyncio.run(_copy_from_program(lab.pg_direct_dsn, "id -u"))
    if os.geteuid() == 0:
        assert uid != "0", "Postgres runs programs as root"


async def _copy_from_program(dsn: str, command: str) -> str:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute("CREATE TEMP TABLE out (line text)")
        await conn.execute(f"COPY out FROM PROGRAM '{command}'")
        return await conn.fetchval("SELECT line FROM out")
    finally:
        await conn.close()


def test_the_password_file_and_logs_are_private(lab):
    settings = lab.settings
    assert stat.S_IMODE(settings.pg_password_file.stat().st_mode) == 0o600
    logs = lab.state_dir / "logs"
    assert stat.S_IMODE(lab.state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(logs.stat().st_mode) == 0o700
    for log in logs.glob("*.log"):
        assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
    assert settings.pg_password not in (lab.run("status").stdout + lab.run("up").stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a lab run as root has to drop privileges")
def test_every_component_runs_unprivileged(lab):
    pids = _recorded_pids(lab)
    assert set(pids) == {"proxy", "kafka", "postgres"}
    for name, pid in pids.items():
        assert 0 not in _uids(pid), f"{name} (pid {pid}) runs as root: {_uids(pid)}"


def test_a_trust_era_data_dir_is_migrated_on_up(lab):
    """A data dir made by an older lab (`initdb --auth=trust`, no password) trusts no one after `up`."""
    state = json.loads((lab.state_dir / "state.json").read_text())
    data = Path(state["components"]["postgres"]["info"]["data_dir"])
    asyncio.run(_query(lab.pg_direct_dsn, "ALTER ROLE lab PASSWORD NULL"))
    lab.run("down")
    (data / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n"
                                      "host all all ::1/128 trust\n")
    (data.parent / "password.sha256").unlink()
    lab.run("up")
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_query(None, "SELECT 1", host="127.0.0.1", port=lab.ports["pg"], user="lab", database="lab",
                           password="anything", passfile="/nonexistent"))
    assert _connect(lab.pg_direct_dsn) == "lab"
    assert "trust" not in "".join(l for l in (data / "pg_hba.conf").read_text().splitlines()
                                  if not l.startswith("#"))


def test_up_after_kill_9_of_the_postmaster_starts_it_cleanly(lab):
    postmaster = _recorded_pids(lab)["postgres"]
    os.kill(postmaster, signal.SIGKILL)
    record = procs.ProcessRecord(postmaster, procs.start_ticks(postmaster) or 0, "postgres")
    procs.wait_gone(record, 10)
    started = time.monotonic()
    result = lab.run("up", check=False)
    assert result.returncode == 0, result.stderr
    assert "postgres  started" in result.stdout
    assert _connect(lab.pg_dsn) == "lab"
    # before the fix `up` waited out its whole 30 s timeout; a clean start takes a few seconds (tolerance 20 s)
    assert time.monotonic() - started < 20


def test_a_component_that_dies_while_starting_fails_up_at_once(tmp_path):
    # somewhere the lab's user can execute it (so the lab need not copy it under /var/lib/chaoslab)
    bin_dir = Path(tempfile.mkdtemp(prefix="chaoslab-fake-", dir="/var/tmp"))
    bin_dir.chmod(0o755)
    fake = bin_dir / "tansu"
    fake.write_text("#!/bin/sh\necho 'boom: this broker cannot start'\nexit 1\n")
    fake.chmod(0o755)
    env = LabEnv(tmp_path / "state")
    try:
        started = time.monotonic()
        result = env.run("up", extra_env={"LAB_TANSU_BIN": str(fake), "LAB_START_TIMEOUT_S": "60"}, check=False)
        elapsed = time.monotonic() - started
        env.run("down", "--purge", check=False)
    finally:
        shutil.rmtree(bin_dir, ignore_errors=True)
    assert result.returncode == 3, result.stderr
    assert "kafka" in result.stderr and "exited while starting" in result.stderr
    assert "boom: this broker cannot start" in result.stderr
    # the timeout is 60 s; failing "at once" means well before it (initdb included; tolerance 30 s)
    assert elapsed < 30, elapsed
