"""The Postgres error table: every asyncpg exception has a row, infrastructure becomes a LabError,
the caller's own errors pass through untouched, and a broken connection is never reused."""

from __future__ import annotations

import asyncio
import errno

import asyncpg
import asyncpg.exceptions
import pytest

from lab.clients.pg_errors import (INFRA_SQLSTATE_CLASSES, Phase, breaks_connection, is_business_error,
                                   is_infrastructure_error, lab_error_for, rule_for, translated)
from lab.errors import CallNotPermitted, ConfigError, DatabaseUnavailable, LabError, PoolExhausted, QueryTimeout

pytestmark = pytest.mark.unit

C, Q = Phase.CONNECT, Phase.COMMAND

CASES = [
    # (what asyncpg or the OS raised, phase, what the client raises; None = passes through as is)
    (asyncpg.InternalClientError("cannot switch to state 11; another operation (2) is in progress"), Q,
     DatabaseUnavailable),
    (asyncpg.ProtocolError("unexpected message"), Q, DatabaseUnavailable),
    (asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"), Q,
     DatabaseUnavailable),
    (asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the underlying connection is closed"), Q,
     DatabaseUnavailable),
    (asyncpg.AdminShutdownError("terminating connection due to unexpected postmaster exit"), Q,
     DatabaseUnavailable),
    (asyncpg.CannotConnectNowError("the database system is starting up"), C, DatabaseUnavailable),
    (asyncpg.TooManyConnectionsError("too many clients"), C, DatabaseUnavailable),
    (asyncpg.OutOfMemoryError("out of memory"), Q, DatabaseUnavailable),
    (ConnectionResetError(errno.ECONNRESET, "reset"), Q, DatabaseUnavailable),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), C, DatabaseUnavailable),
    (ConnectionError("unexpected connection_lost() call"), C, DatabaseUnavailable),
    (BrokenPipeError(errno.EPIPE, "broken pipe"), Q, DatabaseUnavailable),
    (asyncio.TimeoutError(), Q, QueryTimeout),
    (asyncio.TimeoutError(), C, DatabaseUnavailable),
    (asyncpg.QueryCanceledError("canceling statement due to statement timeout"), Q, QueryTimeout),
    (asyncpg.InvalidPasswordError("password authentication failed"), C, DatabaseUnavailable),
    (asyncpg.ClientConfigurationError("invalid DSN"), C, ConfigError),
    # the caller's business
    (asyncpg.UniqueViolationError("duplicate key"), Q, None),
    (asyncpg.PostgresSyntaxError("syntax error at or near"), Q, None),
    (asyncpg.DataError("invalid input for query argument $1"), Q, None),
    (asyncpg.SerializationError("could not serialize access"), Q, None),
    (asyncpg.OutdatedSchemaCacheError("cached statement plan is invalid"), Q, None),
    (ValueError("not a database error"), Q, None),
    (CallNotPermitted("pg", "OPEN"), Q, None),
    (PoolExhausted("no connection within 1s"), Q, None),
]


@pytest.mark.parametrize("exc, phase, expected", CASES, ids=lambda v: type(v).__name__ if isinstance(v, Exception)
                         else getattr(v, "name", getattr(v, "__name__", str(v))))
def test_the_table_maps_each_error_to_its_lab_error(exc, phase, expected):
    error = lab_error_for(exc, "fetchval", phase)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert type(exc).__name__ in str(error) and "fetchval" in str(error)


@pytest.mark.parametrize("exc, phase, expected", CASES, ids=lambda v: type(v).__name__ if isinstance(v, Exception)
                         else getattr(v, "name", getattr(v, "__name__", str(v))))
def test_translated_raises_the_lab_error_from_the_original_or_lets_the_original_pass(exc, phase, expected):
    with pytest.raises(BaseException) as raised:
        with translated("fetchval", phase):
            raise exc
    if expected is None:
        assert raised.value is exc
    else:
        assert type(raised.value) is expected and raised.value.__cause__ is exc


def _every_asyncpg_exception() -> list[BaseException]:
    found = []
    for name in asyncpg.exceptions.__all__:
        cls = getattr(asyncpg.exceptions, name)
        if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, Warning):
            found.append(cls("x"))
    return found


@pytest.mark.parametrize("exc", _every_asyncpg_exception(), ids=lambda e: type(e).__name__)
def test_every_asyncpg_exception_has_a_row_and_a_sqlstate_decides_for_server_errors(exc):
    rule = rule_for(exc)
    assert rule is not None, f"{type(exc).__name__} is in no row of the table"
    if isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, asyncpg.QueryCanceledError):
        infrastructure = (exc.sqlstate or "")[:2] in INFRA_SQLSTATE_CLASSES
        assert is_infrastructure_error(exc) is infrastructure
        assert is_business_error(exc) is not infrastructure
    # while connecting nothing is the caller's query: everything but bad configuration is unavailability
    if not isinstance(exc, (asyncpg.ClientConfigurationError, asyncpg.OutdatedSchemaCacheError)):
        assert isinstance(lab_error_for(exc, "connect", Phase.CONNECT), DatabaseUnavailable)


def test_an_infrastructure_error_or_a_cancellation_breaks_the_connection_a_business_error_does_not():
    assert breaks_connection(asyncpg.InternalClientError("cannot switch to state 12"))
    assert breaks_connection(DatabaseUnavailable("already translated"))
    assert breaks_connection(QueryTimeout("already translated"))
    assert breaks_connection(asyncio.CancelledError())
    assert not breaks_connection(asyncpg.UniqueViolationError("duplicate key"))
    assert not breaks_connection(CallNotPermitted("pg", "OPEN"))


def test_cancellation_passes_through_untranslated():
    with pytest.raises(asyncio.CancelledError):
        with translated("fetchval"):
            raise asyncio.CancelledError()

