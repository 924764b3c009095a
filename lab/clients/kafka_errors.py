"""What the Kafka clients raise (or record in a delivery) for what aiokafka and the OS raise: one table.

    what aiokafka / asyncio / the OS raised                          LabError
    ─────────────────────────────────────────────────────────────   ────────────────
    TimeoutError (a deadline of ours), KafkaTimeoutError,            KafkaTimeout
      RequestTimedOutError (7)                                       (starting: KafkaUnavailable)
    CancelledError as a delivery's outcome (aiokafka abandoned it)   KafkaUnavailable
    KafkaConfigurationError                                          ConfigError
    any retriable KafkaError (KafkaConnectionError, NodeNotReady,    KafkaUnavailable
      NotLeaderForPartition, LeaderNotAvailable, NoBrokersAvailable,
      UnknownTopicOrPartition while the broker restarts, ...)
    the broker or the group gone or moving: BrokerNotAvailable,      KafkaUnavailable
      ReplicaNotAvailable, KafkaUnavailableError, ProducerClosed,
      ConsumerStoppedError, CommitFailed, RebalanceInProgress,
      IllegalGeneration, UnknownMemberId, UnknownError (-1),
      IncompatibleBrokerVersion, UnrecognizedBrokerVersion
    OSError (reset, refused, ...)                                    KafkaUnavailable
    any other KafkaError (MessageSizeTooLarge, RecordTooLarge,       the caller's
      InvalidTopic, TopicAuthorizationFailed, IllegalArgument, ...)
    anything else (TypeError for a bad value, a LabError, ...)       the caller's

"The caller's" errors are the application's own mistakes: they pass through (or are
recorded in the delivery) under their own name, and the breaker ignores them.
Every other row is an infrastructure failure: the LabError carries the original's
class and message, and is raised from it. The producer never raises for a delivery:
``Delivery.error_class`` names the LabError instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Callable, Literal

from aiokafka import errors as kafka

from ..errors import ClientError, ConfigError, KafkaTimeout, KafkaUnavailable, LabError

_GONE_OR_MOVING = (
    kafka.BrokerNotAvailableError, kafka.ReplicaNotAvailableError, kafka.KafkaUnavailableError,
    kafka.ProducerClosed, kafka.ConsumerStoppedError, kafka.CommitFailedError, kafka.RebalanceInProgressError,
    kafka.IllegalGenerationError, kafka.UnknownMemberIdError, kafka.UnknownError,
    kafka.IncompatibleBrokerVersion, kafka.UnrecognizedBrokerVersion,
)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row: which exceptions it matches and the LabError they become (None: the caller's)."""

    description: str
    matches: Callable[[BaseException], bool]
    error: type[LabError] | None
    starting: type[LabError] | None = None  # while starting, if it differs: a start that times out is unreachable

    def error_for(self, starting: bool) -> type[LabError] | None:
        return (self.starting or self.error) if starting else self.error


def _is(*classes: type[BaseException]) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, classes)


TABLE: tuple[Rule, ...] = (
    Rule("TimeoutError, KafkaTimeoutError, RequestTimedOutError",
         _is(TimeoutError, kafka.KafkaTimeoutError, kafka.RequestTimedOutError), KafkaTimeout, KafkaUnavailable),
    Rule("CancelledError (a delivery aiokafka abandoned)", _is(asyncio.CancelledError), KafkaUnavailable),
    Rule("KafkaConfigurationError", _is(kafka.KafkaConfigurationError), ConfigError),
    Rule("retriable KafkaError",
         lambda exc: isinstance(exc, kafka.KafkaError) and bool(getattr(exc, "retriable", False)), KafkaUnavailable),
    Rule("the broker or the group gone or moving", _is(*_GONE_OR_MOVING), KafkaUnavailable),
    Rule("OSError", _is(OSError), KafkaUnavailable),
    Rule("other KafkaError", _is(kafka.KafkaError), None),
)


def rule_for(exc: BaseException) -> Rule | None:
    """The first row matching ``exc``; None for what no row names (it is the caller's)."""
    if isinstance(exc, LabError):
        return None
    return next((rule for rule in TABLE if rule.matches(exc)), None)


def lab_error_for(exc: BaseException, action: str, starting: bool = False) -> LabError | None:
    """The LabError standing for ``exc``, or None when ``exc`` is the caller's to see as is."""
    rule = rule_for(exc)
    error_class = rule.error_for(starting) if rule is not None else None
    if error_class is None:
        return None
    detail = str(exc)
    return error_class(f"{action} failed: {type(exc).__name__}: {detail}" if detail
                       else f"{action} failed: {type(exc).__name__}")


def as_lab_error(exc: BaseException, action: str) -> BaseException:
    """``exc`` translated (with the original as ``__cause__``), or ``exc`` itself if it is the caller's."""
    error = lab_error_for(exc, action)
    if error is None:
        return exc
    error.__cause__ = exc
    return error


def is_infrastructure_error(exc: BaseException) -> bool:
    """True for failures of the broker or the path to it (already translated, or still foreign)."""
    return isinstance(exc, ClientError) or lab_error_for(exc, "") is not None


def is_business_error(exc: BaseException) -> bool:
    """aiokafka's errors about the caller's own request: neither a failure nor a success for the breaker."""
    return isinstance(exc, kafka.KafkaError) and not is_infrastructure_error(exc)


class translated:  # noqa: N801 - used like a function: ``with translated("commit"):``
    """Raise the table's LabError (from the original) for what the block raises; the caller's errors pass."""

    __slots__ = ("action", "starting")

    def __init__(self, action: str, starting: bool = False) -> None:
        self.action, self.starting = action, starting

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False  # success, or the caller's task cancelled: not ours to translate
        error = lab_error_for(exc, self.action, self.starting)
        if error is None:
            return False
        raise error from exc


__all__ = ["Rule", "TABLE", "as_lab_error", "is_business_error", "is_infrastructure_error", "lab_error_for",
           "rule_for", "translated"]
