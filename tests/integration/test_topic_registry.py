"""The topic registry on the real broker (Tansu through the proxy): register, list, exists, delete, grow."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from lab.clients.topic_names import TopicName
from lab.config import Settings
from lab.errors import LabError
from lab.faults import FaultLedger
from lab.faults.network import Partition
from lab.clients.topics import AdminSettings, TopicRegistry, TopicRegistryError, TopicSpec

pytestmark = pytest.mark.integration


def env() -> str:
    return f"t{uuid.uuid4().hex[:8]}"  # a fresh environment prefix per test: names never meet another test's


async def test_register_list_exists_delete(stack):
    prefix = env()
    created = TopicName(prefix, "orders", "order", "created", 1)
    shipped = TopicName(prefix, "orders", "order", "shipped", 2)
    paid = TopicName(prefix, "billing", "payment", "done", 1)
    async with TopicRegistry(AdminSettings(stack.kafka)) as registry:
        assert await registry.register(TopicSpec(created, partitions=3, configs={"retention.ms": "600000"}))
        assert await registry.register(TopicSpec(shipped))
        assert await registry.register(TopicSpec(paid))
        assert not await registry.register(TopicSpec(created, partitions=3))  # already there: nothing changes
        assert await registry.partitions(created) == 3
        assert await registry.list(environment=prefix) == sorted([created, shipped, paid])
        assert await registry.list(environment=prefix, domain="orders") == [created, shipped]
        assert await registry.list(environment=prefix, version=2) == [shipped]
        assert await registry.exists(created) and await registry.exists(str(paid))
        assert await registry.delete(created)
        assert not await registry.exists(created) and not await registry.delete(created)
        assert await registry.list(environment=prefix, domain="orders") == [shipped]


async def test_a_name_colliding_under_the_dot_underscore_rule_is_refused(stack):
    prefix = env()
    name = TopicName(prefix, "metrics", "cpu", "sampled", 1)
    outsider = str(name).replace(".", "_", 1)  # made outside the grammar: t1234_metrics.cpu.sampled.v1
    async with TopicRegistry(AdminSettings(stack.kafka)) as registry:
        from aiokafka.admin import NewTopic
        await registry.admin.create_topics([NewTopic(outsider, 1, 1)])
        with pytest.raises(TopicRegistryError) as caught:
            await registry.register(TopicSpec(name))
        assert str(name) in str(caught.value) and outsider in str(caught.value)
        assert not await registry.exists(name)


async def test_growing_a_topic_on_tansu_says_the_broker_cannot(stack):
    name = TopicName(env(), "orders", "order", "created", 1)
    async with TopicRegistry(AdminSettings(stack.kafka)) as registry:
        await registry.register(TopicSpec(name, partitions=2))
        with pytest.raises(TopicRegistryError, match="does not support CreatePartitions") as caught:
            await registry.add_partitions(name, 4)
        assert str(name) in str(caught.value) and "Tansu" in str(caught.value)
        assert await registry.partitions(name) == 2  # unchanged


async def test_under_a_kafka_partition_each_call_fails_fast_with_a_lab_error_and_works_after_the_heal(stack, tmp_path):
    """The registry under the chaos it must survive: with the broker cut off (the proxy disabled), register,
    exists and list each fail within their bound with a LabError, never a raw driver error or a hang; after the
    heal the same registry object works again (its admin client reconnects)."""
    name = TopicName(env(), "orders", "order", "created", 1)
    admin = AdminSettings(stack.kafka, request_timeout_s=1.0)
    settings = Settings.from_env(stack.env)
    async with TopicRegistry(admin) as registry:
        async with Partition(FaultLedger(tmp_path / "ledger"), settings.proxy_url, "kafka"):
            for action, call in (("register", lambda: registry.register(TopicSpec(name))),
                                 ("exists", lambda: registry.exists(name)),
                                 ("list", lambda: registry.list(environment=name.environment))):
                started = time.monotonic()
                with pytest.raises(LabError) as caught:
                    await call()
                took_s = time.monotonic() - started
                assert took_s < admin.request_timeout_s + 1.0, (action, took_s, caught.value)
        deadline, last = time.monotonic() + 10.0, None
        while time.monotonic() < deadline:  # recovery: bounded, each attempt bounded by request_timeout_s
            try:
                assert await registry.register(TopicSpec(name))
                break
            except LabError as err:
                last = err
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the registry did not recover within 10 s of the heal: {last!r}")
        assert await registry.exists(name)
