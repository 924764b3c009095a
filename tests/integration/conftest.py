"""One real local stack for the client tests, healed after every test."""

from __future__ import annotations

import asyncio

import pytest

from lab.proxy.client import ToxiproxyClient

from ..labenv import LabEnv


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    env = LabEnv(tmp_path_factory.mktemp("clients-lab"))
    env.run("up")
    yield env
    env.run("down", "--purge", check=False)


@pytest.fixture
def proxy(stack):
    client = ToxiproxyClient(stack.proxy_url, timeout_s=5)
    yield client
    asyncio.run(client.reset())


def direct_dsn(stack: LabEnv) -> str:
    return stack.pg_direct_dsn
