"""Resilience core: circuit breaker (resilience4j semantics), retry, rate limiter, adapters."""

from .breaker import CircuitBreaker
from .config import BreakerConfig
from .events import BreakerEvent, BreakerState
from .store import FileStateStore, SQLiteStateStore, StateStore, StoredState

__all__ = [
    "BreakerConfig",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "FileStateStore",
    "SQLiteStateStore",
    "StateStore",
    "StoredState",
]
