"""Protocol-aware faults: lab.proxy's own toxic types (issue 15) that speak Postgres or Kafka.

They go through the same Toxiproxy API as every toxic, so they heal the same way (the
``ToxicFault.heal_from`` removes the toxic by name); they only work against lab.proxy, which
answers an unknown type with a 400 that names it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..proxy.client import ToxiproxyClient
from .base import Fault, FaultError
from .ledger import FaultLedger
from .network import ToxicFault

__all__ = ["KAFKA_ERRORS", "PG_SQLSTATES", "KafkaResponseFault", "PgStatementFault", "ProtocolToxicFault"]

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

    type = "postgres"

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

    type = "kafka"

    def attributes(self) -> dict[str, Any]:
        return {"api_keys": self.api_keys, "error": self.error, "forward": self.forward,
                "probability": self.probability, "throttle_time_ms": self.throttle_time_ms}


class ProtocolToxicFault(ToxicFault):
    """One protocol-aware toxic on one proxy; healed as any toxic is (ToxicFault.heal_from removes it by name)."""

    def __init__(self, ledger: FaultLedger, api_url: str, proxy: str,
                 spec: PgStatementFault | KafkaResponseFault) -> None:
        Fault.__init__(self, ledger)
        self.api_url, self.proxy, self.protocol_spec = api_url, proxy, spec
        self.toxic_name = f"lab-{spec.type}"

    def heal_data(self) -> dict[str, Any]:
        return {"api": self.api_url, "proxy": self.proxy, "toxic": self.toxic_name, "type": self.protocol_spec.type,
                "direction": "upstream", "attributes": self.protocol_spec.attributes()}

    async def _inject(self) -> None:
        await ToxiproxyClient(self.api_url).add_toxic(self.proxy, self.protocol_spec.type, name=self.toxic_name,
                                                      stream="upstream", attributes=self.protocol_spec.attributes())
