"""The lab's pytest plugin (entry point ``pytest11: lab``): fixtures for a team's own chaos tests.

    lab_stack      session: the Settings of a running stack (LAB_* environment), else one brought up for the
                   session (local backend, its own state dir and free ports, so two sessions on one machine do
                   not collide) and brought down after
    toxiproxy      an async Toxiproxy API client of that stack
    lab_history    a Recorder: the test's calls, breakers and fault phases, judged by lab.testing's assertions
    chaos          a Chaos of that stack: every fault kind as an async context manager; whatever the ledger
                   still holds is healed at teardown, even when the test failed or was interrupted

and the marker ``chaos``. Nothing is read or started at import: only when a fixture is requested.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

HEAL_TIMEOUT_S = 120.0


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


def _lab(env: dict[str, str], *args: str, timeout_s: float = 300) -> None:
    result = subprocess.run([sys.executable, "-m", "lab", *args], env=env, capture_output=True, text=True,
                            timeout=timeout_s)
    if result.returncode != 0 and args[0] == "up":
        raise pytest.UsageError(f"`python -m lab {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture(scope="session")
def lab_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from lab.config import Settings

    settings = Settings.from_env()
    if _running(settings):
        yield settings
        return
    api, pg_proxy, kafka_proxy, pg, kafka = _free_ports(5)
    state_dir: Path = tmp_path_factory.mktemp("lab-stack")
    env = {**os.environ, "LAB_STATE_DIR": str(state_dir), "LAB_PROXY_API_PORT": str(api),
           "LAB_PG_PROXY_PORT": str(pg_proxy), "LAB_KAFKA_PROXY_PORT": str(kafka_proxy), "LAB_PG_PORT": str(pg),
           "LAB_KAFKA_PORT": str(kafka), "LAB_BACKEND": "local"}
    try:
        _lab(env, "up")
        yield Settings.from_env(env)
    finally:
        _lab(env, "heal")
        _lab(env, "down", "--purge")


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
