"""The system under test: resilient Postgres and Kafka clients that survive faults and prove it."""

from .dedup import SeenIds
from .envelope import Envelope, EnvelopeError
from .kafka import ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings
from .ledger import ACKED, FAILED, UNKNOWN, Delivery, DeliveryLedger, LossReport, check_delivery
from .postgres import LeakReport, PoolStats, PostgresClient, PostgresSettings
from .topic_names import TopicName, TopicNameError
from .topics import AdminSettings, TopicRegistry, TopicRegistryError, TopicSpec

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
