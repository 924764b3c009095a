"""A real stack of its own for the chaos tests (free ports, its own state dir).

The local backend by default; LAB_TEST_BACKEND=compose runs the same tests on the compose
backend (what `make test-compose` does, inside the Docker engine's network namespace).
"""

from __future__ import annotations

import os

import pytest

from lab.config import Settings

from ..labenv import LabEnv


@pytest.fixture(scope="session")
def chaos_stack(tmp_path_factory):
    backend = os.environ.get("LAB_TEST_BACKEND", "local")
    env = LabEnv(tmp_path_factory.mktemp("chaos-lab"), backend)
    if backend == "compose":
        # the engine is the tests' own (compose/engine/engine.sh) and outlives a run: a stack or data volume a
        # killed run or a hand-started stack left in it would answer with another password. Start afresh.
        env.run("down", "--purge", "--backend", "compose", check=False)
    env.run("up")
    yield env
    env.run("heal", check=False)
    env.run("down", "--purge", check=False)


@pytest.fixture(scope="session")
def chaos_settings(chaos_stack) -> Settings:
    return Settings.from_env(chaos_stack.env)
