"""Faults on the real stack: injected, observed, healed; validation; double injection; idempotent heal."""

from __future__ import annotations

import asyncio
import resource
import time

import asyncpg
import pytest

from lab.config import Settings
from lab.errors import LabError
from lab.faults import FaultLedger, heal_ledger
from lab.faults.base import FaultError
from lab.faults.fd import ClientFdLimit, ConnectionFlood
from lab.faults.memory import MemoryHog
from lab.faults.network import Flapping, Partition, ToxicFault, ToxicSpec, latency
from lab.faults.process import CrashBackend, KillRestart, Pause
from lab.proxy.client import ToxiproxyClient
from lab.stack import procs

from .conftest import direct_dsn

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(stack, tmp_path):
    settings = Settings.from_env(stack.env)
    yield settings, FaultLedger(tmp_path / "ledger")
    stack.run("heal", check=False)


async def test_toxic_fault_is_visible_while_active_and_gone_after(stack, lab):
    settings, ledger = lab
    client = ToxiproxyClient(settings.proxy_url)
    async with ToxicFault(ledger, settings.proxy_url, "postgres", latency(50, direction="upstream")):
        toxics = await client.toxics("postgres")
        assert [(t.name, t.stream, t.attributes["latency"]) for t in toxics] == [("lab-latency-upstream", "upstream", 50)]
        assert [e["state"] for e in ledger.entries()] == ["active"]
    assert await client.toxics("postgres") == []
    assert [e["state"] for e in ledger.entries()] == ["healed"]


async def test_double_injection_is_an_error(stack, lab):
    settings, ledger = lab
    async with Partition(ledger, settings.proxy_url, "kafka"):
        with pytest.raises(LabError, match="already injected"):
            await Partition(ledger, settings.proxy_url, "kafka").inject()
    assert (await ToxiproxyClient(settings.proxy_url).get_proxy("kafka")).enabled


async def test_heal_without_inject_and_twice_is_harmless(stack, lab):
    settings, ledger = lab
    fault = Partition(ledger, settings.proxy_url, "postgres")
    await fault.heal()
    async with fault:
        pass
    await fault.heal()
    assert await heal_ledger(ledger) == []


async def test_heal_happens_on_exception_and_cancellation(stack, lab):
    settings, ledger = lab
    client = ToxiproxyClient(settings.proxy_url)
    with pytest.raises(RuntimeError):
        async with Partition(ledger, settings.proxy_url, "postgres"):
            raise RuntimeError("workload bug")
    assert (await client.get_proxy("postgres")).enabled

    async def hold():
        async with Partition(ledger, settings.proxy_url, "postgres"):
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await asyncio.sleep(0.3)
    assert not (await client.get_proxy("postgres")).enabled
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await client.get_proxy("postgres")).enabled


@pytest.mark.parametrize("bad, message", [
    (dict(type="latency", direction="sideways"), "direction"),
    (dict(type="latency", latency_ms=-1), "latency_ms"),
    (dict(type="earthquake"), "unknown toxic type"),
    (dict(type="latency", toxicity=2), "toxicity"),
])
def test_bad_fault_parameters_are_rejected_before_anything_happens(bad, message):
    with pytest.raises(FaultError, match=message):
        ToxicSpec(**bad)


async def test_flapping_toggles_the_proxy_and_ends_enabled(stack, lab):
    settings, ledger = lab
    fault = Flapping(ledger, settings.proxy_url, "postgres", down_s=0.2, up_s=0.2)
    async with fault:
        await asyncio.sleep(1.0)
    assert len(fault.flips) >= 4 and {up for _, up in fault.flips} == {True, False}
    assert (await ToxiproxyClient(settings.proxy_url).get_proxy("postgres")).enabled


async def test_pause_stops_and_resumes_the_broker(stack, lab):
    settings, ledger = lab
    pid = stack.status()["components"]["kafka"]["pid"]
    async with Pause(ledger, settings, "kafka"):
        assert procs.state_letter(pid) == "T"
    assert procs.state_letter(pid) != "T"


async def test_kill_restart_brings_the_component_back(stack, lab):
    settings, ledger = lab
    before = stack.status()["components"]["kafka"]["pid"]
    async with KillRestart(ledger, settings, "kafka"):
        await asyncio.sleep(0.2)
        assert not stack.status()["components"]["kafka"]["running"]
    after = stack.status()["components"]["kafka"]
    assert after["running"] and after["healthy"] and after["pid"] != before


async def test_crashing_one_backend_sends_postgres_into_recovery(stack, lab):
    settings, ledger = lab
    victim = await asyncpg.connect(direct_dsn(stack), timeout=5)
    bystander = await asyncpg.connect(direct_dsn(stack), timeout=5)
    try:
        async with CrashBackend(ledger, settings):
            pass
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
            await bystander.fetchval("SELECT 1", timeout=5)  # crash recovery ends every session
    finally:
        victim.terminate()
        bystander.terminate()
    conn = await asyncpg.connect(direct_dsn(stack), timeout=5)
    assert await conn.fetchval("SELECT 1") == 1
    await conn.close()


async def test_connection_flood_takes_every_slot_and_gives_them_back(stack, lab):
    settings, ledger = lab
    async with ConnectionFlood(ledger, settings) as fault:
        assert len(fault.connections) > 100
        with pytest.raises(asyncpg.TooManyConnectionsError):
            await asyncpg.connect(direct_dsn(stack), timeout=5)
    conn = await asyncpg.connect(direct_dsn(stack), timeout=5)
    assert await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'chaoslab-flood'") == 0
    await conn.close()


async def test_client_fd_limit_makes_new_sockets_fail_and_is_restored(stack, lab):
    settings, ledger = lab
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    async with ClientFdLimit(ledger):
        with pytest.raises(OSError) as caught:
            await asyncio.open_connection("127.0.0.1", settings.pg_proxy_port)
        assert caught.value.errno == 24  # EMFILE
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


async def test_memory_hog_holds_memory_until_healed(stack, lab):
    settings, ledger = lab
    fault = MemoryHog(ledger, size_mb=64)
    async with fault:
        deadline = time.monotonic() + 5
        rss = 0
        while time.monotonic() < deadline and rss < 60 * 1024:
            status = open(f"/proc/{fault.proc.pid}/status").read()
            rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            await asyncio.sleep(0.05)
        assert rss >= 60 * 1024
        pid = fault.proc.pid
    assert procs.state_letter(pid) in (None, "Z")
