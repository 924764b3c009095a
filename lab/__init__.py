"""chaoslab: a chaos-engineering lab for Python services on PostgreSQL and Kafka."""

__version__ = "0.1.0"
