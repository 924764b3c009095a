"""The system under test: resilient Postgres and Kafka clients that survive faults and prove it."""

from .kafka import ConsumerSettings, KafkaConsumer, KafkaProducer, KafkaSettings
from .ledger import ACKED, FAILED, UNKNOWN, Delivery, DeliveryLedger, LossReport, check_delivery
from .postgres import LeakReport, PoolStats, PostgresClient, PostgresSettings

__all__ = [
    "ACKED",
    "ConsumerSettings",
    "Delivery",
    "DeliveryLedger",
    "FAILED",
    "KafkaConsumer",
    "KafkaProducer",
    "KafkaSettings",
    "LeakReport",
    "LossReport",
    "PoolStats",
    "PostgresClient",
    "PostgresSettings",
    "UNKNOWN",
    "check_delivery",
]
