"""The system under test: resilient Postgres and Kafka clients that survive faults and prove it."""

from ..errors import EnvelopeError, TopicNameError, TopicRegistryError
from .dedup import SeenIds
from .envelope import Envelope
from .kafka import ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings
from .ledger import ACKED, FAILED, UNKNOWN, Delivery, DeliveryLedger, LossReport, check_delivery
from .postgres import LeakReport, PoolStats, PostgresClient, PostgresSettings
from .topic_names import TopicName
from .topics import AdminSettings, TopicRegistry, TopicSpec

__all__ = [
    "ACKED",
    "AdminSettings",
    "ConsumerSettings",
    "Delivery",
    "DeliveryLedger",
    "Envelope",
    "EnvelopeError",
    "FAILED",
    "KafkaConsumer",
    "KafkaProducer",
    "KafkaSettings",
    "LeakReport",
    "LossReport",
    "PoolStats",
    "PostgresClient",
    "PostgresSettings",
    "SeenIds",
    "TopicName",
    "TopicNameError",
    "TopicRegistry",
    "TopicRegistryError",
    "TopicSpec",
    "UNKNOWN",
    "check_delivery",
]
