"""The topic registry: register (create), list with filters, exists, delete, grow — on the real broker.

Names follow topic_names.py's grammar and Kafka's rules; registering a name that
would collide with an existing topic under Kafka's ``.``/``_`` rule is refused
here, with both names, before the broker is asked. The broker is the registry's
only store: ``list`` and ``exists`` ask it, so two registries (or a registry and
a ``kafka-topics`` user) never disagree.

What the broker cannot do is said plainly: Tansu (the local backend's broker)
has no CreatePartitions, so ``add_partitions`` raises TopicRegistryError saying
so and naming the topic, instead of an aiokafka version error.

Every call is bounded by ``request_timeout_s``; broker and network failures are
the LabErrors of kafka_errors.py's table (KafkaUnavailable, KafkaTimeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import (IncompatibleBrokerVersion, TopicAlreadyExistsError, UnknownTopicOrPartitionError,
                             UnsupportedVersionError)

from ..errors import ConfigError, TopicRegistryError
from .kafka_errors import translated
from .topic_names import TopicName, collides, validate_kafka_name


@dataclasses.dataclass(frozen=True)
class TopicSpec:
    """A topic to register: its name (of the grammar), partitions, replication and topic configs."""

    name: TopicName
    partitions: int = 1
    replication_factor: int = 1
    configs: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, TopicName):
            raise ConfigError(f"TopicSpec: name must be a TopicName (TopicName.parse(...)), not {self.name!r}")
        for field, minimum in (("partitions", 1), ("replication_factor", 1)):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ConfigError(f"TopicSpec {self.name}: {field} must be an integer >= {minimum}, not {value!r}")
        for key, value in self.configs.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ConfigError(f"TopicSpec {self.name}: configs must map str to str, not {key!r}: {value!r}")


@dataclasses.dataclass(frozen=True)
class AdminSettings:
    bootstrap: str
    client_id: str = "chaoslab-admin"
    request_timeout_s: float = 5.0


class TopicRegistry:
    """Topics of the grammar on one broker. Use as ``async with TopicRegistry(settings) as registry``."""

    def __init__(self, settings: AdminSettings) -> None:
        self.settings = settings
        self._admin: AIOKafkaAdminClient | None = None

    async def __aenter__(self) -> "TopicRegistry":
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.bootstrap, client_id=self.settings.client_id,
                                    request_timeout_ms=int(self.settings.request_timeout_s * 1000))
        with translated(f"starting an admin client on {self.settings.bootstrap}", starting=True):
            await asyncio.wait_for(admin.start(), self.settings.request_timeout_s)
        self._admin = admin
        return self

    async def __aexit__(self, *exc: object) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                await asyncio.wait_for(admin.close(), self.settings.request_timeout_s)
            except Exception:  # closing is best effort
                pass

    @property
    def admin(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            raise ConfigError("TopicRegistry: not started (use `async with TopicRegistry(...)`)")
        return self._admin

    async def _call(self, action: str, awaitable: Any) -> Any:
        with translated(action):
            return await asyncio.wait_for(awaitable, self.settings.request_timeout_s)

    async def topic_names(self) -> list[str]:
        """Every topic on the broker, of the grammar or not."""
        return sorted(await self._call("listing topics", self.admin.list_topics()))

    async def register(self, spec: TopicSpec) -> bool:
        """Create the topic; False if it already exists (then nothing changes). Refused, with both names,
        if another topic collides with it under Kafka's '.'/'_' rule."""
        name = str(spec.name)
        existing = await self.topic_names()
        if name in existing:
            return False
        clash = [other for other in existing if collides(name, other)]
        if clash:
            raise TopicRegistryError(f"topic {name!r} collides with existing topic {clash[0]!r}: Kafka treats '.' "
                                     "and '_' alike in topic names, so it would refuse the new one")
        new = NewTopic(name, spec.partitions, spec.replication_factor, topic_configs=dict(spec.configs))
        response = await self._call(f"creating topic {name!r}", self.admin.create_topics([new]))
        for topic, code, *message in getattr(response, "topic_errors", ()):
            if code == TopicAlreadyExistsError.errno:
                return False
            if code != 0:
                detail = message[0] if message and message[0] else f"error code {code}"
                raise TopicRegistryError(f"the broker refused to create topic {topic!r} with {spec.partitions} "
                                         f"partitions, replication {spec.replication_factor} and configs "
                                         f"{dict(spec.configs)}: {detail}")
        return True

    async def list(self, environment: str | None = None, domain: str | None = None, entity: str | None = None,
                   event: str | None = None, version: int | None = None) -> list[TopicName]:
        """The broker's topics of the grammar matching every part given (topics outside it are left out)."""
        names: list[TopicName] = []
        for raw in await self.topic_names():
            try:
                name = TopicName.parse(raw)
            except ConfigError:
                continue
            if name.matches(environment, domain, entity, event, version):
                names.append(name)
        return names

    async def exists(self, name: TopicName | str) -> bool:
        return validate_kafka_name(str(name)) in await self.topic_names()

    async def partitions(self, name: TopicName | str) -> int:
        """How many partitions the topic has (TopicRegistryError if the broker does not know it)."""
        topic = validate_kafka_name(str(name))
        described = await self._call(f"describing topic {topic!r}", self.admin.describe_topics([topic]))
        for entry in described:
            if entry.get("topic") == topic and entry.get("error_code", 0) == 0:
                return len(entry.get("partitions", ()))
        raise TopicRegistryError(f"topic {topic!r} does not exist on the broker")

    async def delete(self, name: TopicName | str) -> bool:
        """Delete the topic; False if it did not exist."""
        topic = validate_kafka_name(str(name))
        response = await self._call(f"deleting topic {topic!r}", self.admin.delete_topics([topic]))
        for _topic, code, *_rest in getattr(response, "topic_error_codes", ()):
            if code == UnknownTopicOrPartitionError.errno:
                return False
            if code != 0:
                raise TopicRegistryError(f"the broker refused to delete topic {topic!r}: error code {code}")
        return True

    async def add_partitions(self, name: TopicName | str, total: int) -> None:
        """Grow the topic to ``total`` partitions where the broker supports CreatePartitions.

        Tansu does not: its answer (an unsupported API, or no answer to it) becomes a
        TopicRegistryError that says so, names the topic, and suggests registering
        the topic with the partitions it needs from the start."""
        topic = validate_kafka_name(str(name))
        with translated(f"adding partitions to {topic!r}"):
            try:  # the broker's missing API is found before translation (the table calls it an outage)
                response = await asyncio.wait_for(self.admin.create_partitions({topic: NewPartitions(total)}),
                                                  self.settings.request_timeout_s)
            except (IncompatibleBrokerVersion, UnsupportedVersionError) as err:
                raise TopicRegistryError(_no_create_partitions(topic, total, err)) from err
        for _topic, code, message in getattr(response, "topic_errors", ()):
            if code != 0:
                raise TopicRegistryError(f"the broker refused to grow topic {topic!r} to {total} partitions: "
                                         f"{message or f'error code {code}'}")


def _no_create_partitions(topic: str, total: int, err: BaseException) -> str:
    return (f"cannot grow topic {topic!r} to {total} partitions: the broker does not support CreatePartitions "
            f"(Tansu, the local backend's broker, has none); register the topic with the partitions it needs "
            f"from the start, or run on the compose backend's Apache Kafka ({type(err).__name__}: {err})")
