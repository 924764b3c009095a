"""The lab's pytest plugin (entry point ``pytest11: lab``): fixtures for a team's own chaos tests.

    lab_stack      session: the Settings of a running stack (LAB_* environment), held for the session by a
                   lock in its state dir (``pytest.lock``); with no stack running, or its lock held by another
                   test session, one brought up for this session (its own state dir and free ports; compose
                   containers in a project of its own where a Docker engine answers with the images, local
                   processes otherwise) and brought down after. So two sessions on one machine never put
                   faults on the same stack at once.
    toxiproxy      an async Toxiproxy API client of that stack
    lab_history    a Recorder: the test's calls, breakers and fault phases, judged by lab.testing's assertions
    chaos          a Chaos of that stack: every fault kind as an async context manager; whatever the ledger
                   still holds is healed at teardown, even when the test failed or was interrupted (Ctrl-C:
                   pytest tears fixtures down on KeyboardInterrupt, and the heal runs in a thread of its own)

and the marker ``chaos``. Nothing is read or started at import: only when a fixture is requested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

HEAL_TIMEOUT_S = 120.0
LOCK_FILE = "pytest.lock"
UP_ATTEMPTS = 3  # free ports are picked, then bound by `lab up`: another process may take one in between
PORT_TAKEN = "is already in use by"  # lab.errors.PortInUse: the one failure a retry on other ports may cure


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: a test that injects faults through chaoslab")


def _in_thread(coroutine: Any) -> Any:
    """Run ``coroutine`` to the end in a fresh event loop, whether or not this thread has one running."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result(timeout=HEAL_TIMEOUT_S)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _running(settings: Any) -> bool:
    from lab.errors import LabError
    from lab.stack import backend

    try:
        return not backend.running(settings).problems()
    except LabError:
        return False


def _lab(env: dict[str, str], *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lab", *args], env=env, capture_output=True, text=True,
                          timeout=timeout_s)


@contextlib.contextmanager
def _session_lock(state_path: Path) -> Iterator[bool]:
    """Hold ``state_path``/pytest.lock for the block if no other process holds it: yields whether it was taken.
    An flock: released by the kernel when this process ends, however it ends (no stale lock after a kill)."""
    try:
        fd = os.open(state_path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as err:
        raise pytest.UsageError(f"cannot open the stack's session lock {state_path / LOCK_FILE}: "
                                f"{err.strerror or err} (is LAB_STATE_DIR a stack of another user?)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def _own_stack_env(state_dir: Path) -> dict[str, str]:
    """This session's stack: its own state dir and free ports; in containers where a Docker engine answers with
    the images at hand (``lab.stack.backend.detect``, as ``lab up`` decides), as a compose project of its own
    (``chaoslab-<random>``: two sessions never share containers, network or volume); else local processes.
    LAB_BACKEND set to local or compose decides instead."""
    from lab.config import Settings
    from lab.stack.backend import detect

    api, pg_proxy, kafka_proxy, pg, kafka = _free_ports(5)
    env = {**os.environ, "LAB_STATE_DIR": str(state_dir), "LAB_PROXY_API_PORT": str(api),
           "LAB_PG_PROXY_PORT": str(pg_proxy), "LAB_KAFKA_PROXY_PORT": str(kafka_proxy), "LAB_PG_PORT": str(pg),
           "LAB_KAFKA_PORT": str(kafka),
           "LAB_COMPOSE_PROJECT": f"chaoslab-{uuid.uuid4().hex[:12]}"}
    env["LAB_BACKEND"], _ = detect(Settings.from_env(env))
    return env


@contextlib.contextmanager
def _own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local stack of this session's own (its own state dir, free ports), healed and brought down after."""
    from lab.config import Settings

    for attempt in range(1, UP_ATTEMPTS + 1):
        env = _own_stack_env(tmp_path_factory.mktemp("lab-stack"))
        try:
            result = _lab(env, "up")
        except BaseException:  # a timeout, Ctrl-C: stop what it started
            _lab(env, "down", "--purge")
            raise
        if result.returncode == 0:
            break
        _lab(env, "down", "--purge")
        failure = f"{result.stdout}\n{result.stderr}".strip()
        if PORT_TAKEN not in failure or attempt == UP_ATTEMPTS:
            raise pytest.UsageError(f"`python -m lab up` failed (attempt {attempt} of {UP_ATTEMPTS}):\n{failure}")
    try:
        yield Settings.from_env(env)
    finally:
        _lab(env, "heal")
        _lab(env, "down", "--purge")


@pytest.fixture(scope="session")
def lab_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lab.config import Settings

    settings = Settings.from_env()
    if _running(settings):
        with _session_lock(settings.state_path) as ours:
            if ours:
                yield settings
                return
    with _own_stack(tmp_path_factory) as own:
        yield own


@pytest.fixture
def toxiproxy(lab_stack: Any) -> Any:
    from lab.proxy.client import ToxiproxyClient

    return ToxiproxyClient(lab_stack.proxy_url)


@pytest.fixture
def lab_history() -> Iterator[Any]:
    from lab.testing import Recorder

    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def chaos(lab_stack: Any, lab_history: Any) -> Iterator[Any]:
    from lab.testing import Chaos

    controller = Chaos(lab_stack, lab_history)
    try:
        yield controller
    finally:
        _in_thread(controller.heal_all())
