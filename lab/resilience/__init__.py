"""Resilience core: circuit breaker (resilience4j semantics), retry, rate limiter, adapters, presets."""

from .breaker import CircuitBreaker
from .config import BreakerConfig
from .events import BreakerEvent, BreakerState
from .presets import Preset, RateLimit, preset
from .store import FileStateStore, SQLiteStateStore, StateStore, StoredState

__all__ = [
    "BreakerConfig",
    "BreakerEvent",
    "BreakerState",
    "CircuitBreaker",
    "FileStateStore",
    "Preset",
    "RateLimit",
    "SQLiteStateStore",
    "StateStore",
    "StoredState",
    "preset",
]
