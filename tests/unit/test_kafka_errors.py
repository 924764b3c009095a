"""The Kafka error table: every aiokafka error has a row, infrastructure becomes a LabError, the
caller's own mistakes pass under their own name, and a delivery names the LabError."""

from __future__ import annotations

import asyncio
import errno
import inspect

import pytest
from aiokafka import errors as kafka

from lab.clients.kafka_errors import (as_lab_error, is_business_error, is_infrastructure_error, lab_error_for,
                                      rule_for, translated)
from lab.errors import CallNotPermitted, ConfigError, KafkaTimeout, KafkaUnavailable

pytestmark = pytest.mark.unit

CASES = [
    # (what aiokafka, asyncio or the OS raised, starting?, what the client raises or records; None = as is)
    (kafka.KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 19092)]"), False, KafkaUnavailable),
    (kafka.NodeNotReadyError("node 0 not ready"), False, KafkaUnavailable),
    (kafka.NotLeaderForPartitionError(), False, KafkaUnavailable),
    (kafka.LeaderNotAvailableError(), False, KafkaUnavailable),
    (kafka.UnknownTopicOrPartitionError(), False, KafkaUnavailable),
    (kafka.NoBrokersAvailable(), False, KafkaUnavailable),
    (kafka.BrokerNotAvailableError(), False, KafkaUnavailable),
    (kafka.ProducerClosed(), False, KafkaUnavailable),
    (kafka.CommitFailedError("group rebalanced"), False, KafkaUnavailable),
    (kafka.UnknownError(), False, KafkaUnavailable),
    (ConnectionResetError(errno.ECONNRESET, "reset"), False, KafkaUnavailable),
    (asyncio.CancelledError("delivery future cancelled"), False, KafkaUnavailable),
    (TimeoutError("no acknowledgement within 2s"), False, KafkaTimeout),
    (kafka.KafkaTimeoutError(), False, KafkaTimeout),
    (kafka.RequestTimedOutError(), False, KafkaTimeout),
    (asyncio.TimeoutError(), True, KafkaUnavailable),
    (kafka.KafkaConfigurationError("bad acks"), True, ConfigError),
    # the caller's own mistakes
    (kafka.MessageSizeTooLargeError(), False, None),
    (kafka.RecordTooLargeError(), False, None),
    (kafka.InvalidTopicError(), False, None),
    (kafka.TopicAuthorizationFailedError(), False, None),
    (kafka.IllegalArgumentError("partition out of range"), False, None),
    (TypeError("value must be bytes"), False, None),
    (CallNotPermitted("kafka", "OPEN"), False, None),
]


def _id(value):
    return type(value).__name__ if isinstance(value, BaseException) else getattr(value, "__name__", str(value))


@pytest.mark.parametrize("exc, starting, expected", CASES, ids=_id)
def test_the_table_maps_each_error_to_its_lab_error(exc, starting, expected):
    error = lab_error_for(exc, "send", starting)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected and type(exc).__name__ in str(error)


@pytest.mark.parametrize("exc, starting, expected", [c for c in CASES if isinstance(c[0], Exception)], ids=_id)
def test_translated_raises_the_lab_error_from_the_original_or_lets_the_original_pass(exc, starting, expected):
    with pytest.raises(Exception) as raised:
        with translated("commit", starting):
            raise exc
    if expected is None:
        assert raised.value is exc
    else:
        assert type(raised.value) is expected and raised.value.__cause__ is exc


def test_a_delivery_error_is_recorded_under_the_lab_errors_name():
    error = as_lab_error(kafka.KafkaConnectionError("Connection at 127.0.0.1:19092 closed"), "send")
    assert type(error).__name__ == "KafkaUnavailable" and isinstance(error.__cause__, kafka.KafkaConnectionError)
    business = kafka.MessageSizeTooLargeError()
    assert as_lab_error(business, "send") is business


def _every_aiokafka_error() -> list[BaseException]:
    return [cls() for _, cls in inspect.getmembers(kafka, inspect.isclass)
            if issubclass(cls, kafka.KafkaError) and cls is not kafka.NoError]


@pytest.mark.parametrize("exc", _every_aiokafka_error(), ids=_id)
def test_every_aiokafka_error_has_a_row_and_is_either_infrastructure_or_the_callers(exc):
    assert rule_for(exc) is not None
    assert is_infrastructure_error(exc) is not is_business_error(exc)
    if getattr(exc, "retriable", False):  # aiokafka itself says: try again, the cluster is moving
        assert is_infrastructure_error(exc)
