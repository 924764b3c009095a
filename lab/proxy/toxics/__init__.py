"""The toxic types, registered by the name the API uses."""

from __future__ import annotations

from .bandwidth import Bandwidth
from .base import Toxic, pass_through
from .corrupt import Corrupt
from .kafka import Kafka
from .latency import Latency
from .limit_data import LimitData
from .noop import Noop
from .packet_loss import PacketLoss
from .postgres import Postgres
from .reset_peer import ResetPeer
from .slicer import Slicer
from .slow_close import SlowClose
from .timeout import Timeout

REGISTRY: dict[str, type[Toxic]] = {
    cls.type_name: cls
    for cls in (Bandwidth, Corrupt, Kafka, LimitData, Latency, Noop, PacketLoss, Postgres, ResetPeer, Slicer,
                SlowClose, Timeout)
}

__all__ = [
    "REGISTRY",
    "Bandwidth",
    "Corrupt",
    "Kafka",
    "Latency",
    "LimitData",
    "Noop",
    "PacketLoss",
    "Postgres",
    "ResetPeer",
    "Slicer",
    "SlowClose",
    "Timeout",
    "Toxic",
    "pass_through",
]
