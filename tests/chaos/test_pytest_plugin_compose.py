"""The plugin's ``lab_stack`` where a Docker engine answers (``make test-compose`` runs this in the lab's own
engine): with no stack running, two test sessions at once each bring up a compose project of their own
(containers, network and volume apart), fault their own stack, and take it down with its volume after."""

from __future__ import annotations

import os

import pytest

from .test_pytest_plugin import _two_sessions

pytestmark = [pytest.mark.chaos,
              pytest.mark.skipif(os.environ.get("LAB_TEST_BACKEND") != "compose",
                                 reason="needs a Docker engine (make test-compose)")]

SESSION = '''
import asyncio, os, pathlib, time
from lab.proxy.client import ToxiproxyClient


async def test_a_fault_on_my_own_containers(lab_stack, chaos):
    me, other = os.environ["SESSION"], os.environ["OTHER"]
    meeting = pathlib.Path(os.environ["MEETING"])
    (meeting / f"{me}.ready").write_text(f"{lab_stack.backend} {lab_stack.compose_project}")
    deadline = time.monotonic() + 240
    while not (meeting / f"{other}.ready").exists():  # both stacks up before either injects
        assert time.monotonic() < deadline, "the other session never got a stack"
        await asyncio.sleep(0.05)
    client = ToxiproxyClient(lab_stack.proxy_url)
    async with chaos.partition("postgres"):
        for _ in range(10):
            assert (await client.proxies())["postgres"].enabled is False, "my partition was healed under me"
            await asyncio.sleep(0.1)
    assert (await client.proxies())["postgres"].enabled
'''


def test_two_sessions_with_no_stack_running_each_bring_their_own_compose_project(tmp_path):
    import docker

    # the stand-in images stay named (no registry here); every other LAB_* setting is the sessions' own
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_") or k.endswith("_IMAGE")}
    env["LAB_STATE_DIR"] = str(tmp_path / "no-stack-here")
    used = [ready.split() for ready in _two_sessions(tmp_path, env, SESSION)]
    assert len(used) == 2 and all(backend == "compose" for backend, _ in used), used
    projects = {project for _, project in used}
    assert len(projects) == 2 and "chaoslab" not in projects, used
    client = docker.from_env(timeout=30)
    try:
        for project in projects:
            label = f"com.docker.compose.project={project}"
            assert client.containers.list(all=True, filters={"label": label}) == [], f"{project} left containers"
            assert client.volumes.list(filters={"label": label}) == [], f"{project} left its volume"
    finally:
        client.close()
