"""The real local stack: Postgres, Tansu and lab.proxy, exercised through the proxied ports."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError

from lab.proxy.client import ToxiproxyClient
from lab.stack import procs

from ..labenv import LabEnv, lab_processes, listening

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    env = LabEnv(tmp_path_factory.mktemp("lab-state"))
    env.run("up")
    yield env
    env.run("down", "--purge", check=False)


async def _query(dsn: str, timeout: float = 5.0) -> int:
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        return await conn.fetchval("SELECT 41 + 1")
    finally:
        await conn.close(timeout=timeout)


async def _produce_consume(bootstrap: str, topic: str, value: bytes, timeout_ms: int = 5000) -> tuple[list, list]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms, acks="all")
    await producer.start()
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(topic, value), timeout_ms / 1000)
        brokers = [(b.host, b.port) for b in producer.client.cluster.brokers()]
    finally:
        await asyncio.wait_for(producer.stop(), 10)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=timeout_ms)
    await consumer.start()
    try:
        partition = TopicPartition(topic, sent.partition)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        batch = await consumer.getmany(partition, timeout_ms=timeout_ms)
        values = [record.value for record in batch.get(partition, [])]
    finally:
        await asyncio.wait_for(consumer.stop(), 10)
    return values, brokers


async def test_postgres_answers_through_the_proxy(lab):
    assert await _query(lab.pg_dsn) == 42


async def test_kafka_round_trip_through_the_proxy_and_only_the_proxy_is_advertised(lab):
    values, brokers = await _produce_consume(lab.kafka, "stack-check", b"through the proxy")
    assert values == [b"through the proxy"]
    assert brokers == [("127.0.0.1", lab.ports["kafka_proxy"])]


async def test_disabled_proxies_fail_fast_and_recover(lab):
    client = ToxiproxyClient(lab.proxy_url)
    for name in ("postgres", "kafka"):
        await client.disable(name)
    try:
        started = time.monotonic()
        with pytest.raises((OSError, asyncpg.PostgresError, asyncio.TimeoutError)):
            await _query(lab.pg_dsn, timeout=3)
        with pytest.raises((KafkaError, KafkaConnectionError, OSError, asyncio.TimeoutError)):
            await _produce_consume(lab.kafka, "stack-check", b"nope", timeout_ms=2000)
        assert time.monotonic() - started < 5, "both must fail fast, not wait for TCP timeouts"
    finally:
        for name in ("postgres", "kafka"):
            await client.enable(name)
    assert await _query(lab.pg_dsn) == 42
    values, _ = await _produce_consume(lab.kafka, "stack-check", b"back again")
    assert values == [b"back again"]


def test_up_again_is_a_no_op(lab):
    before = {name: c["pid"] for name, c in lab.status()["components"].items()}
    result = lab.run("up")
    assert all(f"{name:<9} running" in result.stdout for name in before)
    assert {name: c["pid"] for name, c in lab.status()["components"].items()} == before


def test_status_reports_pid_endpoints_and_health(lab):
    report = lab.status()
    assert report["backend"] == "local" and report["up"]
    for name, entry in report["components"].items():
        assert entry["running"] and entry["healthy"], (name, entry)
        assert isinstance(entry["pid"], int)
    assert report["components"]["postgres"]["endpoint"] == f"127.0.0.1:{lab.ports['pg_proxy']}"
    assert report["components"]["kafka"]["upstream"] == f"127.0.0.1:{lab.ports['kafka']}"
    human = lab.run("status").stdout
    assert "postgres" in human and "healthy" in human


def test_killed_broker_is_reported_and_up_restores_it(lab):
    pid = lab.status()["components"]["kafka"]["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and lab.status()["components"]["kafka"]["running"]:
        time.sleep(0.05)
    kafka = lab.status()["components"]["kafka"]
    assert not kafka["running"] and not kafka["healthy"]
    result = lab.run("up")
    assert "kafka     started" in result.stdout and "postgres  running" in result.stdout
    kafka = lab.status()["components"]["kafka"]
    assert kafka["running"] and kafka["healthy"] and kafka["pid"] != pid


def test_logs_show_each_component(lab):
    out = lab.run("logs", "kafka", "-n", "5").stdout
    assert "kafka.log" in out and "tansu" in out.lower()


def test_heal_resets_toxics_and_resumes_paused_processes(lab):
    async def add_toxic():
        await ToxiproxyClient(lab.proxy_url).add_toxic("postgres", "latency", attributes={"latency": 500})

    asyncio.run(add_toxic())
    pid = lab.status()["components"]["kafka"]["pid"]
    os.kill(pid, signal.SIGSTOP)
    assert lab.status()["components"]["kafka"]["paused"]
    out = lab.run("heal").stdout
    assert "every toxic removed" in out and "kafka" in out
    assert not lab.status()["components"]["kafka"]["paused"]
    assert asyncio.run(ToxiproxyClient(lab.proxy_url).toxics("postgres")) == []


def test_down_leaves_no_process_and_no_listening_port(tmp_path):
    env = LabEnv(tmp_path / "state")
    env.run("up")
    assert all(listening(port) for port in env.all_ports())
    pids = [c["pid"] for c in env.status()["components"].values()]
    out = env.run("down").stdout
    assert "stopped: proxy, kafka, postgres" in out
    assert not any(listening(port) for port in env.all_ports())
    for pid in pids:
        state = procs.state_letter(pid)
        assert state in (None, "Z"), f"pid {pid} still alive in state {state}"
    assert lab_processes(env.state_dir) == []
    assert not (env.state_dir / "state.json").exists()
    assert json.loads(env.run("status", "--json").stdout)["up"] is False
    assert "nothing was running" in env.run("down").stdout
    env.run("down", "--purge")
