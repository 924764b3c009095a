"""The Backend contract, on whichever backend the chaos stack runs (local in `make test`, compose in
`make test-compose`): what faults, the runner and `lab heal` rely on."""

from __future__ import annotations

import asyncio
import os

import pytest

from lab.config import Settings
from lab.stack import health, limits, procs
from lab.stack.backend import running

pytestmark = pytest.mark.integration

SERVER_NAMES = {"postgres": "postgres", "kafka": "tansu", "proxy": "python"}


@pytest.fixture
def backend(chaos_stack):
    stack = running(Settings.from_env(chaos_stack.env))
    assert stack.problems() == []
    yield stack
    stack.resume_paused()
    assert stack.problems() == []


def test_up_again_reports_running_not_started(chaos_stack):
    result = chaos_stack.run("up")
    assert "started" not in result.stdout, result.stdout
    assert result.stdout.count("running") == 3


def test_status_shows_host_pids_of_the_servers(chaos_stack, backend):
    report = backend.status()
    assert report["up"] and report["backend"] == chaos_stack.backend
    for name, entry in report["components"].items():
        assert entry["running"] and entry["healthy"] and not entry["paused"], (name, entry)
        assert entry["pid"] == backend.main_process(name).pid
        if name in ("postgres", "kafka"):  # the proxy stand-in and the official image differ in their argv0
            assert SERVER_NAMES[name] in procs.cmdline(entry["pid"]), procs.cmdline(entry["pid"])


def test_pause_is_seen_by_status_and_problems_until_resumed(backend):
    backend.pause("kafka")
    try:
        assert backend.status()["components"]["kafka"]["paused"]
        assert procs.state_letter(backend.main_process("kafka").pid) in ("T", "D"), "frozen"
        assert any("kafka" in p and ("paused" in p or "stopped" in p) for p in backend.problems())
    finally:
        backend.resume("kafka")
    assert not backend.status()["components"]["kafka"]["paused"]
    backend.resume("kafka")  # harmless when not paused


def test_operations_leave_no_descriptor_open_in_the_caller(backend):
    """The workload runs in the lab's own process, whose fds the growth check counts: an operation on the
    stack (a Docker API call on compose) must not leave a connection of its own open afterwards."""
    backend.status()  # any one-time setup (the SDK's imports) before the count
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        backend.status()
        backend.main_process("postgres")
        backend.pause("kafka")
        backend.resume("kafka")
        backend.problems()
        backend.kafka_flavour()
    after = sorted(os.listdir("/proc/self/fd"))
    assert len(after) <= len(before), {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in after if fd not in before}


def test_kill_then_start_waits_until_healthy(chaos_stack, backend):
    before = backend.main_process("postgres")
    backend.kill("postgres")
    assert not procs.is_ours(before)
    assert any("postgres" in p for p in backend.problems())
    backend.start("postgres")
    settings = Settings.from_env(chaos_stack.env)
    assert "SELECT 1 ok" in asyncio.run(health.postgres_ready(settings.pg_proxy_port, password=settings.pg_password))
    assert backend.main_process("postgres").pid != before.pid


def test_memory_limit_is_enforced_and_restored(backend):
    pid = backend.main_process("postgres").pid
    before = limits.memory_limit_bytes(pid)
    undo: list[dict] = []
    backend.set_memory_limit("postgres", 256 * 1024 * 1024, undo.append)
    try:
        assert len(undo) == 1, "the undo data is handed over before the limit is set"
        assert limits.memory_limit_bytes(pid) == 256 * 1024 * 1024
        assert any("memory" in p for p in backend.problems())
    finally:
        backend.restore_memory_limit(undo[0])
    assert limits.memory_limit_bytes(pid) >= min(before, limits.host_memory_bytes())
    backend.restore_memory_limit(undo[0])  # idempotent
    assert backend.problems() == []


def test_fd_limit_lowered_and_restored_as_the_owner(backend):
    main = backend.main_process("postgres")
    soft, hard = limits.nofile(main.pid)
    limits.lower_nofile(main, 64)
    try:
        assert limits.nofile(main.pid) == (64, hard)
    finally:
        limits.restore_nofile({"process": main.to_json(), "previous_soft": soft})
    assert limits.nofile(main.pid) == (soft, hard)


def test_flavours_name_what_runs(chaos_stack, backend):
    # the local backend and the stand-in images run Tansu and lab.proxy; the official images would say apache
    # and toxiproxy (only the nightly job runs those)
    assert backend.kafka_flavour() == "tansu"
    assert backend.proxy_flavour() == "lab.proxy"


def test_unknown_component_is_a_clear_error(backend):
    from lab.errors import StackError

    with pytest.raises(StackError, match="no component 'zookeeper'"):
        backend.main_process("zookeeper")
