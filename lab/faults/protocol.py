"""Protocol-aware faults: lab.proxy's own toxic types (issue 15) that speak Postgres or Kafka.

They go through the same Toxiproxy API as every toxic: a ToxicFault carries one (``ctx.toxic("postgres",
PgStatementFault(...))``) and heals it like any toxic, removing it by name. They only work against
lab.proxy, which answers an unknown type with a 400 that names it. Both act on the client's requests
(``direction`` upstream) and always (``toxicity`` 1: their own ``probability`` decides per message).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from .base import FaultError

__all__ = ["KAFKA_ERRORS", "PG_SQLSTATES", "KafkaResponseFault", "PgStatementFault"]

PG_SQLSTATES = ("40001", "40P01", "57P01", "53300", "57014", "")
KAFKA_ERRORS = ("NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT", "NOT_ENOUGH_REPLICAS", "LEADER_NOT_AVAILABLE",
                "UNKNOWN_TOPIC_OR_PARTITION", "")


@dataclasses.dataclass(frozen=True)
class PgStatementFault:
    """Statements matching ``pattern`` fail with ``sqlstate`` (or are only delayed by ``latency_ms``)."""

    pattern: str
    sqlstate: str = "40001"
    probability: float = 1.0
    latency_ms: int = 0
    message: str = ""

    def __post_init__(self) -> None:
        if self.sqlstate not in PG_SQLSTATES:
            raise FaultError(f"sqlstate must be one of {', '.join(PG_SQLSTATES[:-1])} or '', got {self.sqlstate!r}")
        if not 0 < self.probability <= 1:
            raise FaultError(f"probability must be in (0, 1], got {self.probability!r}")
        if self.latency_ms < 0:
            raise FaultError(f"latency_ms must be >= 0, got {self.latency_ms!r}")

    type: ClassVar[str] = "postgres"
    direction: ClassVar[str] = "upstream"
    toxicity: ClassVar[float] = 1.0

    def attributes(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "sqlstate": self.sqlstate, "message": self.message,
                "latency": self.latency_ms, "probability": self.probability}


@dataclasses.dataclass(frozen=True)
class KafkaResponseFault:
    """Responses to ``api_keys`` requests carry ``error``; ``forward``: the broker still gets the request."""

    error: str
    api_keys: str = "produce"
    forward: bool = False
    probability: float = 1.0
    throttle_time_ms: int = 0

    def __post_init__(self) -> None:
        if self.error not in KAFKA_ERRORS:
            raise FaultError(f"error must be one of {', '.join(KAFKA_ERRORS[:-1])} or '', got {self.error!r}")
        if not 0 < self.probability <= 1:
            raise FaultError(f"probability must be in (0, 1], got {self.probability!r}")
        if self.throttle_time_ms < 0:
            raise FaultError(f"throttle_time_ms must be >= 0, got {self.throttle_time_ms!r}")

    type: ClassVar[str] = "kafka"
    direction: ClassVar[str] = "upstream"
    toxicity: ClassVar[float] = 1.0

    def attributes(self) -> dict[str, Any]:
        return {"api_keys": self.api_keys, "error": self.error, "forward": self.forward,
                "probability": self.probability, "throttle_time_ms": self.throttle_time_ms}
